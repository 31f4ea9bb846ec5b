"""Every awkward kind of image file enters the program as 8-bit RGB, or as a clear error."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from prefcli import images
from prefcli.errors import ImageError
from prefcli.image_folder import scan_folder


def _colourful(w: int = 64, h: int = 48) -> Image.Image:
    """A smooth, never-black RGB test pattern."""
    x = np.linspace(0, 1, w)[None, :]
    y = np.linspace(0, 1, h)[:, None]
    r = 40 + 200 * x + 0 * y
    g = 40 + 200 * y + 0 * x
    b = 120 + 80 * np.sin(6 * x) * np.cos(4 * y)
    return Image.fromarray(np.stack([r, g, b], -1).clip(0, 255).astype(np.uint8), "RGB")


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _check_rgb(im: Image.Image, size: tuple[int, int]) -> np.ndarray:
    assert im.mode == "RGB"
    assert im.size == size
    arr = np.asarray(im)
    assert arr.dtype == np.uint8 and arr.shape == (size[1], size[0], 3)
    assert arr.max() > 0  # pixels really decoded
    return arr


@pytest.mark.parametrize(
    "fmt,kw", [("JPEG", {"quality": 95}), ("PNG", {}), ("WEBP", {"quality": 95}), ("BMP", {}), ("TIFF", {})]
)
def test_common_formats_decode_to_rgb(fmt, kw):
    src = _colourful()
    arr = _check_rgb(images.decode_image(_encode(src, fmt, **kw), name=f"x.{fmt.lower()}"), src.size)
    # Lossless formats give the pixels back; lossy ones stay close.
    err = np.abs(arr.astype(int) - np.asarray(src).astype(int)).mean()
    assert err < (6 if fmt in ("JPEG", "WEBP") else 0.01)


def test_animated_gif_gives_first_frame():
    red = Image.new("RGB", (20, 10), (220, 30, 30))
    blue = Image.new("RGB", (20, 10), (30, 30, 220))
    data = _encode(red, "GIF", save_all=True, append_images=[blue], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    arr = _check_rgb(images.decode_image(data), (20, 10))
    r, g, b = arr[5, 10].astype(int)
    assert r > 150 and b < 100


def test_palette_with_transparency_composites_on_white():
    im = Image.new("P", (10, 10), 0)
    im.putpalette([0, 0, 0, 200, 40, 40] + [0] * (256 * 3 - 6))  # entry 0 black (transparent), 1 red
    for x in range(5):
        for y in range(10):
            im.putpixel((x, y), 1)
    data = _encode(im, "PNG", transparency=0)
    arr = _check_rgb(images.decode_image(data), (10, 10))
    assert tuple(arr[5, 8]) == (255, 255, 255)  # transparent -> white, not black
    assert tuple(arr[5, 2]) == (200, 40, 40)


def test_rgba_composites_on_white():
    im = Image.new("RGBA", (8, 8), (0, 0, 0, 0))  # fully transparent black
    im.putpixel((1, 1), (0, 0, 255, 255))  # opaque blue
    im.putpixel((2, 2), (0, 0, 0, 128))  # half-transparent black -> mid grey
    arr = _check_rgb(images.decode_image(_encode(im, "PNG")), (8, 8))
    assert tuple(arr[0, 0]) == (255, 255, 255)
    assert tuple(arr[1, 1]) == (0, 0, 255)
    assert 110 <= arr[2, 2, 0] <= 145 and arr[2, 2, 0] == arr[2, 2, 1] == arr[2, 2, 2]


def test_la_composites_on_white():
    im = Image.new("LA", (4, 4), (0, 0))
    im.putpixel((0, 0), (90, 255))
    arr = _check_rgb(images.decode_image(_encode(im, "PNG")), (4, 4))
    assert tuple(arr[3, 3]) == (255, 255, 255)
    assert tuple(arr[0, 0]) == (90, 90, 90)


def test_cmyk_jpeg():
    src = _colourful(32, 24)
    data = _encode(src.convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    arr = _check_rgb(images.decode_image(data), (32, 24))
    # Colours survive the round trip (not inverted, not black).
    assert np.abs(arr.astype(int) - np.asarray(src).astype(int)).mean() < 10


def test_16bit_png_gradient_is_scaled():
    grad = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (16, 1))
    data = _encode(Image.fromarray(grad), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    arr = _check_rgb(images.decode_image(data), (256, 16))
    row = arr[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert abs(row[128] - 128) <= 2  # linear, not clipped or wrapped
    assert np.all(np.diff(row) >= 0)  # monotone


def test_16bit_big_endian_and_float_tiff():
    grad = np.tile(np.linspace(1000, 60000, 64).astype(np.uint16), (4, 1))
    im16b = Image.frombytes("I;16B", (64, 4), grad.astype(">u2").tobytes())
    arr = _check_rgb(images.decode_image(_encode(im16b, "TIFF")), (64, 4))
    assert arr[0, 0, 0] == round(1000 / 257) and arr[0, -1, 0] == round(60000 / 257)

    f = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (4, 1))
    arr = _check_rgb(images.decode_image(_encode(Image.fromarray(f, "F"), "TIFF")), (64, 4))
    assert arr[0, 0, 0] == 0 and arr[0, -1, 0] == 255 and abs(int(arr[0, 32, 0]) - 129) <= 2


def test_greyscale_and_bilevel():
    grey = _colourful().convert("L")
    arr = _check_rgb(images.decode_image(_encode(grey, "PNG")), grey.size)
    assert np.array_equal(arr[..., 0], np.asarray(grey)) and np.array_equal(arr[..., 0], arr[..., 2])
    bw = Image.new("1", (9, 9), 1)
    arr = _check_rgb(images.decode_image(_encode(bw, "BMP")), (9, 9))
    assert tuple(arr[4, 4]) == (255, 255, 255)


def test_exif_orientation_is_applied():
    src = Image.new("RGB", (40, 20), (30, 160, 60))
    src.paste((230, 30, 30), (0, 0, 10, 20))  # red band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs 90° clockwise
    data = _encode(src, "JPEG", exif=exif, quality=95)
    out = images.decode_image(data)
    _check_rgb(out, (20, 40))  # width and height swap
    top = np.asarray(out)[2, 10].astype(int)
    assert top[0] > 150 and top[1] < 100  # the left band is now on top


def test_truncated_jpeg_is_reported(monkeypatch):
    data = _encode(_colourful(256, 256), "JPEG", quality=95)
    cut = data[: len(data) // 2]
    with pytest.raises(ImageError, match=r"^cut\.jpg: truncated"):
        images.decode_image(cut, name="cut.jpg")
    # Even if another library switched Pillow to accept truncated files.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ImageError, match="truncated"):
        images.decode_image(cut, name="cut.jpg")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_png_is_reported():
    data = _encode(_colourful(128, 128), "PNG")
    with pytest.raises(ImageError, match="truncated or corrupt"):
        images.decode_image(data[: len(data) - 400], name="cut.png")


def test_empty_and_not_an_image(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.png: empty file \(0 bytes\)"):
        images.load_image(empty)
    with pytest.raises(ImageError, match="empty"):
        images.content_id_of_file(empty)
    text = tmp_path / "notes.jpg"
    text.write_text("these are not pixels\n" * 20)
    with pytest.raises(ImageError, match=r"notes\.jpg: not an image"):
        images.load_image(text)
    with pytest.raises(ImageError, match="file not found"):
        images.load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="file not found"):
        images.content_id_of_file(tmp_path / "missing.png")


def test_formats_outside_the_list_are_refused():
    # Pillow could open an ICO, but prefcli only reads the formats it documents.
    data = _encode(_colourful(32, 32), "ICO")
    with pytest.raises(ImageError, match="not an image"):
        images.decode_image(data, name="icon.png")


def test_env_limit_refuses_large_images(monkeypatch):
    data = _encode(_colourful(64, 48), "PNG")
    monkeypatch.setenv("PREFCLI_MAX_IMAGE_PIXELS", "1000")
    assert images.max_pixels() == 1000
    with pytest.raises(
        ImageError,
        match=r"image too large: 64×48 = 3,072 pixels exceeds the limit of 1,000 \(set PREFCLI_MAX_IMAGE_PIXELS",
    ):
        images.decode_image(data, name="big.png")
    monkeypatch.setenv("PREFCLI_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ImageError, match="PREFCLI_MAX_IMAGE_PIXELS"):
        images.max_pixels()
    monkeypatch.delenv("PREFCLI_MAX_IMAGE_PIXELS")
    assert images.max_pixels() == 100_000_000


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def test_crafted_bomb_header_is_refused_before_decoding():
    # A 60000×60000 PNG header (3.6 G pixels) with a tiny body: it must be refused
    # from the header alone, without trying to allocate the pixels.
    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + _png_chunk(b"IEND", b"")
    )
    with pytest.raises(ImageError, match=r"bomb\.png: image too large: .*3,600,000,000 pixels"):
        images.decode_image(data, name="bomb.png")


def test_content_ids(tmp_path):
    data = _encode(_colourful(), "PNG")
    p = tmp_path / "a.png"
    p.write_bytes(data)
    assert images.content_id(data) == hashlib.sha256(data).hexdigest()
    assert images.content_id_of_file(p) == hashlib.sha256(data).hexdigest()


def _mixed_folder(root: Path) -> dict[str, bytes]:
    good = {
        "a.png": _encode(_colourful(), "PNG"),
        "B.JPG": _encode(_colourful(30, 20), "JPEG"),
        "c.webp": _encode(_colourful(16, 16), "WEBP"),
    }
    for name, data in good.items():
        (root / name).write_bytes(data)
    (root / "empty.png").write_bytes(b"")
    (root / "text.jpeg").write_text("hello")
    (root / "cut.jpg").write_bytes(_encode(_colourful(128, 128), "JPEG")[:700])
    (root / "readme.txt").write_text("not an image, and not pretending")
    (root / ".hidden.png").write_bytes(good["a.png"])
    sub = root / "sub"
    sub.mkdir()
    (sub / "d.gif").write_bytes(_encode(_colourful(), "GIF"))
    return good


def test_list_images(tmp_path):
    _mixed_folder(tmp_path)
    names = [p.name for p in images.list_images(tmp_path)]
    assert names == ["B.JPG", "a.png", "c.webp", "cut.jpg", "empty.png", "text.jpeg"]
    rec = [p.relative_to(tmp_path).as_posix() for p in images.list_images(tmp_path, recursive=True)]
    assert rec == ["B.JPG", "a.png", "c.webp", "cut.jpg", "empty.png", "sub/d.gif", "text.jpeg"]


def test_scan_folder_separates_good_and_bad(tmp_path):
    good = _mixed_folder(tmp_path)
    # A history scan decodes each file now, once, and the candidate keeps the pixels.
    cands, bad = scan_folder(tmp_path, keep_pixels=True)
    assert sorted(Path(c.path).name for c in cands) == sorted(good)
    for c in cands:
        data = good[Path(c.path).name]
        assert c.image_id == hashlib.sha256(data).hexdigest()
        assert c._image is not None  # decoded once, kept for the scorer
        assert c.image.mode == "RGB"
    reasons = {Path(p).name: r for p, r in bad}
    assert set(reasons) == {"empty.png", "text.jpeg", "cut.jpg"}
    assert reasons["empty.png"].startswith("empty file")
    assert reasons["text.jpeg"].startswith("not an image")
    assert reasons["cut.jpg"].startswith("truncated or corrupt")
    cands, bad = scan_folder(tmp_path, recursive=True, keep_pixels=True)
    assert len(cands) == 4 and len(bad) == 3


def test_candidate_scan_reads_headers_only(tmp_path, monkeypatch):
    """Candidates are decoded once, by the scorer: the scan decodes nothing and a truncated file fails later."""
    good = _mixed_folder(tmp_path)
    decoded = []
    real = images.decode_image
    monkeypatch.setattr(
        images, "decode_image", lambda data, name="<bytes>", **kw: decoded.append(name) or real(data, name, **kw)
    )
    cands, bad = scan_folder(tmp_path)
    assert decoded == []
    assert sorted(Path(c.path).name for c in cands) == sorted([*good, "cut.jpg"])
    assert all(c._image is None for c in cands)
    assert {Path(p).name for p, _ in bad} == {"empty.png", "text.jpeg"}
    cut = next(c for c in cands if c.path.endswith("cut.jpg"))
    with pytest.raises(ImageError, match="truncated or corrupt"):
        cut.original  # noqa: B018
    cands, bad = scan_folder(tmp_path, recursive=True)
    assert len(cands) == 5 and len(bad) == 2


def test_scan_folder_missing_or_file(tmp_path):
    with pytest.raises(ImageError, match="nope"):
        scan_folder(tmp_path / "nope")
    f = tmp_path / "f.png"
    f.write_bytes(b"x")
    with pytest.raises(ImageError, match="not a folder"):
        images.list_images(f)


def test_candidate_from_path_uses_images(tmp_path):
    from prefcli.types import Candidate

    data = _encode(_colourful(), "PNG")
    p = tmp_path / "x.png"
    p.write_bytes(data)
    c = Candidate.from_path(str(p))
    assert c.image_id == hashlib.sha256(data).hexdigest()
    assert c.image.size == (64, 48)


def test_viper_examples_load(viper_examples):
    found = images.list_images(viper_examples)
    assert [p.name for p in found] == ["query1.png", "query2.png", "query3.png", "query4.png"]
    for p in found:
        im = images.load_image(p)
        assert im.mode == "RGB" and min(im.size) > 16
        assert np.asarray(im).std() > 1  # a real picture, not a flat fill


# ---- keep_mode: the image as its file holds it, for scorers that convert it their upstream's way


def test_keep_mode_keeps_palette_transparency_and_alpha():
    pal = Image.new("P", (10, 10), 0)
    pal.putpalette([0, 0, 0, 200, 40, 40] + [0] * (256 * 3 - 6))
    kept = images.decode_image(_encode(pal, "PNG", transparency=0), keep_mode=True)
    assert kept.mode == "P" and kept.info.get("transparency") == 0
    assert tuple(kept.convert("RGB").getpixel((5, 5))) == (0, 0, 0)  # upstream's convert: no white
    assert images.to_rgb(kept).getpixel((5, 5)) == (255, 255, 255)  # the viewer's form composites
    rgba = Image.new("RGBA", (8, 8), (10, 200, 30, 0))
    kept = images.decode_image(_encode(rgba, "PNG"), keep_mode=True)
    assert kept.mode == "RGBA" and kept.getpixel((0, 0)) == (10, 200, 30, 0)
    la = images.decode_image(_encode(Image.new("LA", (4, 4), (90, 0)), "PNG"), keep_mode=True)
    assert la.mode == "LA"


def test_keep_mode_still_applies_exif_and_brings_16_bit_to_8():
    src = Image.new("RGB", (40, 20), (30, 160, 60))
    exif = Image.Exif()
    exif[0x0112] = 6
    assert images.decode_image(_encode(src, "JPEG", exif=exif), keep_mode=True).size == (20, 40)
    g16 = Image.fromarray((np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16))
    kept = images.decode_image(_encode(g16, "PNG"), keep_mode=True)
    assert kept.mode == "L" and np.asarray(kept).max() > 200


def test_a_candidate_gives_scorers_the_original_and_viewers_rgb(tmp_path):
    from prefcli.types import Candidate

    im = Image.new("RGBA", (6, 6), (0, 0, 255, 0))
    p = tmp_path / "t.png"
    p.write_bytes(_encode(im, "PNG"))
    for c in (Candidate.from_path(str(p)), Candidate.from_image(im)):
        assert c.original.mode == "RGBA"
        assert c.image.mode == "RGB" and c.image.getpixel((0, 0)) == (255, 255, 255)
    rgb = Candidate.from_image(_colourful())
    assert rgb.image is rgb.original  # nothing to composite: no copy
