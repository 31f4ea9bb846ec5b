"""The one way an image enters the program.

Every image - a candidate to rank, a history image, a dataset shard entry -
is decoded here, so the awkward cases are handled once: EXIF orientation,
palette and alpha images (composited onto white, as a viewer shows them),
CMYK, 16-bit and float images, animated files (first frame), truncated or
corrupt files, and decompression bombs. Failures are `ImageError("NAME: reason")`.

Hostile files are stopped before they cost anything: a path is opened only
if it is a regular file (a FIFO would block forever, `/dev/zero` never ends),
its size is checked against `max_bytes()` before a byte is read, its first
bytes must carry the signature of a format we read, and the pixel count and
aspect ratio in its header are checked against `max_pixels()` and
`max_aspect()` before any pixel is decoded. Folder listings take regular
files only and report what they leave out (dangling links, link loops,
folders and devices with image names) as (path, reason).

Two forms come out. `decode_image(...)` gives a fully loaded 8-bit RGB image
(what sheets and the VLM scorers show). `decode_image(..., keep_mode=True)`
gives the image as its file holds it - palette, alpha and greyscale kept,
only turned upright by EXIF and brought to 8 bits - because each general
scorer's upstream code resizes and converts the image as opened, its own way
(OpenAI CLIP resizes first and then drops alpha, HPSv2 converts first, ...);
compositing onto white here would change their numbers. `to_rgb` turns such
an image into the RGB form.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from prefcli.errors import ImageError
from prefcli.stage_times import DECODE as DECODES  # every decode_image call: calls and seconds
from prefcli.stage_times import timed_fn

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})

# Decoded size: 100 M pixels is 300 MB as 8-bit RGB, beyond any camera photo
# a scorer is shown (they all scale images down to 224-448 px anyway).
DEFAULT_MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = "PREFCLI_MAX_IMAGE_PIXELS"

# Long side / short side. Every scorer scales the short side up or down to its
# input size before it crops, so the long side becomes ratio x that size: a
# 475-byte 1x100,000 PNG would be resized to 224x22,400,000 px (15 GB of
# pixels) for CLIP. At 50:1 it is 224x11,200 (7.5 MB); real panoramas stay
# under about 12:1.
DEFAULT_MAX_ASPECT = 50
MAX_ASPECT_ENV = "PREFCLI_MAX_IMAGE_ASPECT"

# File size, checked from the file system before reading: a file is read into
# memory whole to hash and decode it, so without a cap a 3 GB file costs 3 GB.
# 512 MiB is above any real photo within the pixel limit (a 100 MP 8-bit
# RGBA TIFF stored uncompressed is 400 MB).
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
MAX_BYTES_ENV = "PREFCLI_MAX_IMAGE_BYTES"

# Enough for every format's signature test (Pillow's own plugins look at 16 bytes).
_SIGNATURE_BYTES = 16

# Only formats we mean to read. Pillow can open many more, some of which run
# external programs (EPS calls Ghostscript); a file named .jpg that is really
# one of those is "not an image" to us. (The multi-picture JPEGs many cameras
# write open through the JPEG plugin.)
_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "DIB", "TIFF")

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}

_CHUNK = 1 << 20


def image_error(name: str, reason: str) -> ImageError:
    """An ImageError whose `.name` and `.reason` are also kept apart for tables."""
    err = ImageError(f"{name}: {reason}")
    err.name = name  # type: ignore[attr-defined]
    err.reason = reason  # type: ignore[attr-defined]
    return err


def _env_limit(env: str, default: int, unit: str) -> int:
    raw = os.environ.get(env, "").strip().replace("_", "")
    if not raw:
        return default
    try:
        value = int(float(raw))
    except (ValueError, OverflowError):
        raise ImageError(f"{env}: not a number ({raw!r})") from None
    if value <= 0:
        raise ImageError(f"{env}: must be a positive number of {unit}, got {raw!r}")
    return value


def max_pixels() -> int:
    """Largest image (width x height) we agree to decode; env PREFCLI_MAX_IMAGE_PIXELS overrides."""
    return _env_limit(MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS, "pixels")


def max_aspect() -> int:
    """Largest long-side / short-side ratio we agree to decode; env PREFCLI_MAX_IMAGE_ASPECT overrides."""
    return _env_limit(MAX_ASPECT_ENV, DEFAULT_MAX_ASPECT, "(long side / short side)")


def max_bytes() -> int:
    """Largest image file (bytes) we agree to read; env PREFCLI_MAX_IMAGE_BYTES overrides."""
    return _env_limit(MAX_BYTES_ENV, DEFAULT_MAX_BYTES, "bytes")


def content_id(data: bytes) -> str:
    """The id an image is stored under everywhere: sha256 hex of its bytes."""
    return hashlib.sha256(data).hexdigest()


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "is a folder, not an image file"
    if stat.S_ISFIFO(mode):
        return "not a regular file (a FIFO / named pipe)"
    if stat.S_ISCHR(mode):
        return "not a regular file (a character device)"
    if stat.S_ISBLK(mode):
        return "not a regular file (a block device)"
    if stat.S_ISSOCK(mode):
        return "not a regular file (a socket)"
    return "not a regular file"


def _read_error(name: str, e: OSError, path: str | os.PathLike | None = None) -> ImageError:
    if e.errno == errno.ELOOP:
        return image_error(name, "symlink loop (too many levels of symbolic links)")
    if isinstance(e, FileNotFoundError):
        if path is not None and os.path.islink(path):
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            return image_error(name, f"dangling symlink (its target {target} does not exist)")
        return image_error(name, "file not found")
    if isinstance(e, IsADirectoryError):
        return image_error(name, "is a folder, not an image file")
    if isinstance(e, PermissionError):
        return image_error(name, "permission denied")
    return image_error(name, f"cannot read file ({e.strerror or e})")


def _too_many_bytes(size: int, limit: int) -> str:
    return f"file too large: {size:,} bytes exceeds the limit of {limit:,} (set {MAX_BYTES_ENV} to raise it)"


def _signature_ok(head: bytes) -> bool:
    """Whether the first bytes are the signature of a format we read (Pillow's own tests)."""
    for fmt in _formats():
        accept = Image.OPEN[fmt][1]
        if accept is None or accept(head):
            return True
    return False


def _not_an_image() -> str:
    return "not an image (cannot identify image format: no JPEG, PNG, WebP, GIF, BMP or TIFF signature)"


@contextmanager
def _open_checked(path: str | os.PathLike) -> Iterator[tuple[BinaryIO, int]]:
    """An open regular file within the size limit whose first bytes are an image signature.

    The path is classified with stat before it is opened (a FIFO is never
    opened for reading: that blocks until a writer comes), and checked again
    on the open descriptor (O_NONBLOCK), so a swap in between gains nothing.
    """
    name = str(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise _read_error(name, e, path) from None
    if not stat.S_ISREG(st.st_mode):
        raise image_error(name, _kind(st.st_mode))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise _read_error(name, e, path) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise image_error(name, _kind(st.st_mode))
        if st.st_size == 0:
            raise image_error(name, "empty file (0 bytes)")
        limit = max_bytes()
        if st.st_size > limit:
            raise image_error(name, _too_many_bytes(st.st_size, limit))
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        try:
            head = f.read(_SIGNATURE_BYTES)
        except OSError as e:
            raise _read_error(name, e, path) from None
        if not head:
            raise image_error(name, "empty file (0 bytes)")
        if not _signature_ok(head):
            raise image_error(name, _not_an_image())
        f.seek(0)
        yield f, st.st_size


def _read_file(path: str | os.PathLike) -> bytes:
    """The file's bytes, after the checks of `_open_checked`; never more than max_bytes()."""
    name = str(path)
    limit = max_bytes()
    with _open_checked(path) as (f, _size):
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise _read_error(name, e, path) from None
    if len(data) > limit:  # it grew after the size check
        raise image_error(name, _too_many_bytes(len(data), limit))
    return data


def read_image_file(path: str | os.PathLike) -> bytes:
    """A file's bytes for storing or decoding, with every check made before it is read
    (regular file, size limit, image signature); ImageError naming it otherwise."""
    return _read_file(path)


def content_id_of_file(path: str | os.PathLike) -> str:
    """sha256 of the file's bytes, streamed; ImageError if it is missing, empty, too large or not an image."""
    name = str(path)
    limit = max_bytes()
    h = hashlib.sha256()
    size = 0
    with _open_checked(path) as (f, _size):
        try:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
                if size > limit:
                    raise image_error(name, _too_many_bytes(size, limit))
        except OSError as e:
            raise _read_error(name, e, path) from None
    return h.hexdigest()


def _formats() -> tuple[str, ...]:
    Image.init()  # registers WEBP, TIFF, ... once; cheap after that
    return tuple(f for f in _FORMATS if f in Image.OPEN)


def _too_large(width: int | None, height: int | None, pixels: int, limit: int) -> str:
    size = f"{width}×{height} = " if width and height else ""
    return f"image too large: {size}{pixels:,} pixels exceeds the limit of {limit:,} (set {MAX_PIXELS_ENV} to raise it)"


def _bad_geometry(width: int, height: int) -> str | None:
    """Why an image of this size is refused (too many pixels, extreme aspect ratio), or None."""
    if width < 1 or height < 1:
        return f"image has no pixels ({width}×{height})"
    limit = max_pixels()
    if width * height > limit:
        return _too_large(width, height, width * height, limit)
    ratio_limit = max_aspect()
    long, short = max(width, height), min(width, height)
    if long > ratio_limit * short:
        return (
            f"extreme aspect ratio: {width}×{height} is {long / short:,.0f}:1, over the limit of {ratio_limit}:1 "
            f"(scorers scale the short side to their input size; set {MAX_ASPECT_ENV} to raise it)"
        )
    return None


def check_image_size(width: int, height: int, name: str = "<image>") -> None:
    """ImageError unless an image of width x height is within the pixel and aspect-ratio limits."""
    reason = _bad_geometry(int(width), int(height))
    if reason is not None:
        raise image_error(name, reason)


def _align_pil_limit(limit: int) -> None:
    # Pillow's own bomb guard (a warning above MAX_IMAGE_PIXELS, an error above
    # twice that) fires inside Image.open. Our limit is the one that counts, so
    # Pillow's is only ever raised to meet it, never lowered: other code in the
    # process keeps at least the protection it had.
    current = Image.MAX_IMAGE_PIXELS
    if current is not None and current < limit:
        Image.MAX_IMAGE_PIXELS = limit


def _to_8bit(im: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer and float greyscale images -> 8-bit L, scaled."""
    import numpy as np

    arr = np.asarray(im)
    if im.mode in _SIXTEEN_BIT_MODES:
        # The full 16-bit range maps onto the full 8-bit range.
        out = arr.astype(np.float64) / 257.0
    elif im.mode == "I":
        # 16-bit PNGs and TIFFs often arrive as mode I: keep the fixed 16-bit
        # scale when the values fit it, else stretch what is there.
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo >= 0 and hi <= 65535:
            out = arr.astype(np.float64) / 257.0
        else:
            out = (arr.astype(np.float64) - lo) * (255.0 / max(hi - lo, 1))
    else:  # "F"
        a = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if lo >= 0.0 and hi <= 1.0:
            out = a * 255.0  # the usual [0, 1] convention
        elif lo >= 0.0 and hi <= 255.0:
            out = a
        else:
            out = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), mode="L")


def _on_white(im: Image.Image) -> Image.Image:
    rgba = im.convert("RGBA")
    out = Image.new("RGB", rgba.size, (255, 255, 255))
    out.paste(rgba, mask=rgba.getchannel("A"))
    return out


def _as_opened(im: Image.Image) -> Image.Image:
    """The image in its own mode (P, PA, LA, RGBA, L, 1, CMYK, ...), 16-bit and float brought to 8-bit L."""
    if im.mode in _SIXTEEN_BIT_MODES or im.mode in ("I", "F"):
        return _to_8bit(im)
    return im.copy()  # detached from the file; palette and "transparency" info are kept


def to_rgb(im: Image.Image) -> Image.Image:
    """RGB as a viewer shows it: alpha and transparent palette entries composited onto white.

    An RGB image without a colour key is returned as it is (no copy).
    """
    if im.mode == "RGB" and "transparency" not in im.info:
        return im
    return _to_rgb(im)


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return _to_8bit(im).convert("RGB")
    if mode in _ALPHA_MODES:
        return _on_white(im)
    if "transparency" in im.info and mode in ("P", "L", "RGB", "1"):
        # A transparent palette entry or colour key: composite like real alpha.
        return _on_white(im)
    if mode == "RGB":
        return im.copy()
    return im.convert("RGB")  # 1, L, P, CMYK, YCbCr, ...


@timed_fn(DECODES)
def decode_image(data: bytes, name: str = "<bytes>", *, keep_mode: bool = False) -> Image.Image:
    """Decode encoded bytes into a fully loaded 8-bit RGB image, or raise ImageError naming `name`.

    With `keep_mode=True` the image keeps its own mode (see the module docstring).
    """
    if not data:
        raise image_error(name, "empty file (0 bytes)")
    if not _signature_ok(bytes(data[:_SIGNATURE_BYTES])):
        raise image_error(name, _not_an_image())
    # Somebody else's library may have switched this on; a truncated file must
    # be reported, never silently padded with grey.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    limit = max_pixels()
    _align_pil_limit(limit)
    formats = _formats()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=formats) as im:
                width, height = im.size
                reason = _bad_geometry(width, height)  # from the header, before any decoding
                if reason is not None:
                    raise image_error(name, reason)
                im.load()  # an animated file stays on its first frame
                try:
                    if im.getexif().get(0x0112, 1) not in (0, 1):  # orientation tag says "rotate"
                        im = ImageOps.exif_transpose(im) or im
                except Exception:  # noqa: BLE001 - broken EXIF: keep the pixels as stored
                    pass
                return _as_opened(im) if keep_mode else _to_rgb(im)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        m = re.search(r"\((\d+) pixels\)", str(e))
        pixels = int(m.group(1)) if m else 0
        raise image_error(name, _too_large(None, None, pixels, limit)) from None
    except UnidentifiedImageError:
        raise image_error(name, "not an image (cannot identify image format)") from None
    except MemoryError:
        raise image_error(name, "not enough memory to decode the image") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, ZeroDivisionError) as e:
        detail = str(e).strip()
        reason = "truncated or corrupt image data"
        raise image_error(name, f"{reason} ({detail})" if detail else reason) from None
    except Exception as e:  # noqa: BLE001 - decoders raise odd types (struct.error, ...)
        raise image_error(name, f"truncated or corrupt image data ({type(e).__name__}: {e})") from None


def check_image_bytes(data: bytes, name: str = "<bytes>") -> tuple[int, int]:
    """(width, height) from the header, within the limits, or ImageError naming `name`; no pixel is decoded.

    What a scan checks: the pixels are decoded once, later, by the scorer that needs them
    (a truncated file is then reported and skipped, see prefcli.harness.readable).
    """
    if not data:
        raise image_error(name, "empty file (0 bytes)")
    if not _signature_ok(bytes(data[:_SIGNATURE_BYTES])):
        raise image_error(name, _not_an_image())
    limit = max_pixels()
    _align_pil_limit(limit)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=_formats()) as im:
                width, height = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        m = re.search(r"\((\d+) pixels\)", str(e))
        raise image_error(name, _too_large(None, None, int(m.group(1)) if m else 0, limit)) from None
    except UnidentifiedImageError:
        raise image_error(name, "not an image (cannot identify image format)") from None
    except Exception as e:  # noqa: BLE001 - header parsers raise odd types (struct.error, ...)
        detail = str(e).strip()
        raise image_error(
            name, f"truncated or corrupt image data ({detail})" if detail else "truncated or corrupt image data"
        ) from None
    reason = _bad_geometry(width, height)
    if reason is not None:
        raise image_error(name, reason)
    return width, height


def decode_kept(data: bytes, name: str) -> tuple[Image.Image, Image.Image]:
    """The image as opened and as RGB, decoded once (ImageError naming `name`, the RGB conversion included)."""
    original = decode_image(data, name=name, keep_mode=True)
    try:
        return original, to_rgb(original)
    except Exception as e:  # noqa: BLE001 - a mode PIL cannot convert is a bad file, never a traceback
        raise image_error(name, f"cannot convert the image to RGB ({type(e).__name__}: {e})") from None


def load_image(path: str | os.PathLike, *, keep_mode: bool = False) -> Image.Image:
    """Read a file and decode it (see decode_image)."""
    return decode_image(_read_file(path), name=str(path), keep_mode=keep_mode)


def _folder(folder: str | os.PathLike) -> Path:
    p = Path(folder).expanduser()
    if not p.exists():
        raise ImageError(f"{folder}: folder not found")
    if not p.is_dir():
        raise ImageError(f"{folder}: not a folder")
    return p


def _entry_problem(entry: os.DirEntry, recursive: bool) -> tuple[str, str | None]:
    """What a folder entry is: ("file", None), ("walk", None), ("skip", None) or ("report", reason).

    Only regular files are candidates. An entry with an image name that is
    anything else is reported, never opened: a FIFO would block the scan
    forever and a link to /dev/zero would never end. Folders are walked with
    `recursive`; links to folders are not followed (a link loop would never
    end) and, then, reported.
    """
    image_name = Path(entry.name).suffix.lower() in IMAGE_SUFFIXES
    try:
        link = entry.is_symlink()
        st = os.stat(entry.path)  # follows the link
    except OSError as e:
        if not image_name:
            return "skip", None
        return "report", getattr(_read_error(entry.path, e, entry.path), "reason", str(e))
    if stat.S_ISREG(st.st_mode):
        return ("file", None) if image_name else ("skip", None)
    if stat.S_ISDIR(st.st_mode):
        if recursive and not link:
            return "walk", None
        if recursive:
            return "report", "symlink to a folder, not followed (give the folder itself)"
        if image_name and link:
            return "report", "symlink to a folder, not an image file"
        if image_name:
            return "report", "is a folder, not an image file (its images are included with --recursive)"
        return "skip", None
    return ("report", _kind(st.st_mode)) if image_name else ("skip", None)


def find_images(folder: str | os.PathLike, recursive: bool = False) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files in `folder` (regular files with an image suffix, any case), sorted, and the
    entries with image names that were left out, as (path, reason). Hidden files and folders
    are skipped silently."""
    root = _folder(folder)
    found: list[Path] = []
    skipped: list[tuple[str, str]] = []
    pending = [root]
    while pending:
        here = pending.pop()
        try:
            with os.scandir(here) as it:
                entries = list(it)
        except OSError as e:
            if here == root:
                raise ImageError(f"{folder}: cannot list the folder ({e.strerror or e})") from None
            skipped.append((str(here), f"cannot list the folder ({e.strerror or e})"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            what, reason = _entry_problem(entry, recursive)
            if what == "file":
                found.append(Path(entry.path))
            elif what == "walk":
                pending.append(Path(entry.path))
            elif what == "report":
                skipped.append((entry.path, reason or "not an image file"))

    def order(p: Path) -> tuple[str, ...]:
        return Path(p).relative_to(root).parts

    return sorted(found, key=order), sorted(skipped, key=lambda b: order(Path(b[0])))


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files in `folder` by suffix (any case), sorted, hidden files and folders skipped
    (only regular files; see find_images for what is left out and why)."""
    return find_images(folder, recursive=recursive)[0]
