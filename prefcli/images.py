"""The one way an image enters the program.

Every image - a candidate to rank, a history image, a dataset shard entry -
is decoded here, so the awkward cases are handled once: EXIF orientation,
palette and alpha images (composited onto white, as a viewer shows them),
CMYK, 16-bit and float images, animated files (first frame), truncated or
corrupt files, and decompression bombs. Failures are `ImageError("NAME: reason")`.

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

import hashlib
import io
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from prefcli.errors import ImageError

if TYPE_CHECKING:  # pragma: no cover
    from prefcli.types import Candidate

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})

DEFAULT_MAX_PIXELS = 100_000_000
MAX_PIXELS_ENV = "PREFCLI_MAX_IMAGE_PIXELS"

# Only formats we mean to read. Pillow can open many more, some of which run
# external programs (EPS calls Ghostscript); a file named .jpg that is really
# one of those is "not an image" to us. (The multi-picture JPEGs many cameras
# write open through the JPEG plugin.)
_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "DIB", "TIFF")

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}

_CHUNK = 1 << 20


def _error(name: str, reason: str) -> ImageError:
    """An ImageError whose `.name` and `.reason` are also kept apart for tables."""
    err = ImageError(f"{name}: {reason}")
    err.name = name  # type: ignore[attr-defined]
    err.reason = reason  # type: ignore[attr-defined]
    return err


def max_pixels() -> int:
    """Largest image (width x height) we agree to decode; env PREFCLI_MAX_IMAGE_PIXELS overrides."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(raw))
    except ValueError:
        raise ImageError(f"{MAX_PIXELS_ENV}: not a number ({raw!r})") from None
    if value <= 0:
        raise ImageError(f"{MAX_PIXELS_ENV}: must be a positive number of pixels, got {raw!r}")
    return value


def content_id(data: bytes) -> str:
    """The id an image is stored under everywhere: sha256 hex of its bytes."""
    return hashlib.sha256(data).hexdigest()


def _read_file(path: str | os.PathLike) -> bytes:
    name = str(path)
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise _read_error(name, e) from None
    if not data:
        raise _error(name, "empty file (0 bytes)")
    return data


def _read_error(name: str, e: OSError) -> ImageError:
    if isinstance(e, FileNotFoundError):
        return _error(name, "file not found")
    if isinstance(e, IsADirectoryError):
        return _error(name, "is a directory, not an image file")
    if isinstance(e, PermissionError):
        return _error(name, "permission denied")
    return _error(name, f"cannot read file ({e.strerror or e})")


def content_id_of_file(path: str | os.PathLike) -> str:
    """sha256 of the file's bytes, streamed; ImageError if it is missing or empty."""
    name = str(path)
    h = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
    except OSError as e:
        raise _read_error(name, e) from None
    if size == 0:
        raise _error(name, "empty file (0 bytes)")
    return h.hexdigest()


def _formats() -> tuple[str, ...]:
    Image.init()  # registers WEBP, TIFF, ... once; cheap after that
    return tuple(f for f in _FORMATS if f in Image.OPEN)


def _too_large(width: int | None, height: int | None, pixels: int, limit: int) -> str:
    size = f"{width}×{height} = " if width and height else ""
    return (
        f"image too large: {size}{pixels:,} pixels exceeds the limit of {limit:,} "
        f"(set {MAX_PIXELS_ENV} to raise it)"
    )


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


def decode_image(data: bytes, name: str = "<bytes>", *, keep_mode: bool = False) -> Image.Image:
    """Decode encoded bytes into a fully loaded 8-bit RGB image, or raise ImageError naming `name`.

    With `keep_mode=True` the image keeps its own mode (see the module docstring).
    """
    if not data:
        raise _error(name, "empty file (0 bytes)")
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
                if width * height > limit:  # from the header, before any decoding
                    raise _error(name, _too_large(width, height, width * height, limit))
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
        raise _error(name, _too_large(None, None, pixels, limit)) from None
    except UnidentifiedImageError:
        raise _error(name, "not an image (cannot identify image format)") from None
    except MemoryError:
        raise _error(name, "not enough memory to decode the image") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, ZeroDivisionError) as e:
        detail = str(e).strip()
        reason = "truncated or corrupt image data"
        raise _error(name, f"{reason} ({detail})" if detail else reason) from None
    except Exception as e:  # noqa: BLE001 - decoders raise odd types (struct.error, ...)
        raise _error(name, f"truncated or corrupt image data ({type(e).__name__}: {e})") from None


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


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files in `folder` by suffix (any case), sorted, hidden files and folders skipped."""
    root = _folder(folder)
    found: list[Path] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for fn in filenames:
                if not fn.startswith(".") and Path(fn).suffix.lower() in IMAGE_SUFFIXES:
                    found.append(Path(dirpath) / fn)
    else:
        for p in root.iterdir():
            if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                found.append(p)
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def scan_folder(
    folder: str | os.PathLike, recursive: bool = False
) -> tuple[list["Candidate"], list[tuple[str, str]]]:
    """Check every image in a folder: (good candidates, [(path, reason) for each bad file]).

    Each good file is decoded once to prove it decodes, then its pixels are
    dropped again (the candidate reloads them on demand), so a large folder
    does not sit in memory. One bad file never stops the scan.
    """
    from prefcli.types import Candidate

    good: list[Candidate] = []
    bad: list[tuple[str, str]] = []
    for path in list_images(folder, recursive=recursive):
        try:
            data = _read_file(path)
            decode_image(data, name=str(path))
        except ImageError as e:
            bad.append((str(path), getattr(e, "reason", str(e))))
            continue
        # Same fields as Candidate.from_path, without reading the file twice.
        good.append(
            Candidate(image_id=content_id(data), path=str(path), loader=lambda p=path: load_image(p, keep_mode=True))
        )
    return good, bad
