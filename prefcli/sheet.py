"""Contact sheets: a grid of thumbnails with a caption under each.

A ranking is easiest to judge by eye, so `rank` (and the demo) can write one
image showing the candidates in rank order with their scores and names.
Optionally the sheet also shows what the ranking was conditioned on: the
prompt under the title, and the person's history as a strip of smaller
thumbnails, liked ones framed green and marked "+", disliked ones framed red
and marked "-" (the mark keeps them apart in greyscale too).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from prefcli.errors import PrefcliError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

# Pillow format name per output suffix; the file is first written under a
# temporary name, so the format cannot be guessed from the name Pillow sees.
SHEET_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}

_BACKGROUND = (255, 255, 255)
_TILE = (236, 236, 236)
_TEXT = (20, 20, 20)
_TITLE_BG = (40, 40, 40)
_TITLE_TEXT = (250, 250, 250)
_LIKED = (0, 158, 115)  # Okabe–Ito green
_DISLIKED = (213, 94, 0)  # Okabe–Ito vermillion


def sheet_format(path: str | os.PathLike) -> str:
    """Pillow format for a sheet path, or a clear error for a suffix we do not write."""
    suffix = Path(path).suffix.lower()
    try:
        return SHEET_FORMATS[suffix]
    except KeyError:
        raise PrefcliError(
            f"{path}: cannot write a contact sheet with suffix {suffix or '(none)'!r}; use .jpg, .png or .webp"
        ) from None


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable default font (Pillow >= 10.1 with FreeType)
    except TypeError:  # pragma: no cover - older Pillow: fixed-size bitmap font
        return ImageFont.load_default()


def _text_width(draw, text: str, font) -> float:
    return draw.textlength(text, font=font)


def _fit(draw, text: str, font, width: int) -> str:
    """Shorten `text` with a middle ellipsis so it fits in `width` pixels (names keep their suffix)."""
    if _text_width(draw, text, font) <= width:
        return text
    keep = len(text)
    while keep > 1:
        keep -= 1
        head = text[: (keep + 1) // 2]
        tail = text[len(text) - keep // 2 :] if keep // 2 else ""
        short = f"{head}…{tail}"
        if _text_width(draw, short, font) <= width:
            return short
    return "…"


def _line_height(font) -> int:
    left, top, right, bottom = font.getbbox("Ag…")
    return int(math.ceil(bottom - min(top, 0))) + 2


def _thumbnail(image: Image.Image, size: int) -> Image.Image:
    from PIL import Image

    small = image.convert("RGB")
    scale = size / max(small.size)
    if scale >= 2:
        # Tiny images (the synthetic world's) are enlarged by a whole factor,
        # with hard edges, so they stay legible instead of a dot in a tile.
        k = int(scale)
        small = small.resize((small.width * k, small.height * k), Image.Resampling.NEAREST)
    small.thumbnail((size, size), Image.Resampling.LANCZOS)  # aspect kept; the tile pads the rest
    return small


def contact_sheet(
    items: Sequence[tuple[Image.Image, str]],
    path: str | os.PathLike,
    *,
    thumb: int = 192,
    columns: int | None = None,
    title: str | None = None,
    subtitle: str | None = None,
    history: Sequence[tuple[Image.Image, bool]] | None = None,
) -> Path:
    """Write a grid of thumbnails, each captioned, to `path` (JPEG, PNG or WebP by suffix).

    `items` are (image, caption) in display order; a caption may hold several
    lines separated by newlines (e.g. "#1  0.93" and the file name). Each
    thumbnail keeps its aspect ratio inside a `thumb`-pixel square tile.
    `columns` defaults to a roughly square grid of at most 6 columns. The file
    is written atomically. `subtitle` (e.g. the prompt) is a line under the
    title; `history` is (image, liked) pairs drawn as a strip of half-size
    thumbnails above the grid, liked first. Returns the path written.
    """
    from PIL import Image, ImageDraw

    from prefcli.atomic import atomic_path

    fmt = sheet_format(path)
    if not items:
        raise PrefcliError(f"{path}: nothing to put on the contact sheet (no images)")
    if thumb < 16:
        raise PrefcliError(f"contact sheet thumbnails must be at least 16 pixels, got {thumb}")
    n = len(items)
    if columns is None:
        columns = min(6, max(1, math.ceil(math.sqrt(n))))
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)

    pad = max(6, thumb // 24)
    caption_size = max(10, thumb // 14)
    font = _font(caption_size)
    title_font = _font(int(caption_size * 1.4))
    line_h = _line_height(font)
    max_lines = max((caption.count("\n") + 1 for _, caption in items), default=1)
    caption_h = max_lines * line_h + pad // 2
    title_h = (_line_height(title_font) + 2 * pad) if title else 0
    if subtitle:
        title_h += line_h + (0 if title else pad)
    hist = sorted(history or [], key=lambda h: not h[1])  # liked first, then disliked
    small_t = max(16, thumb // 2)
    strip_h = (line_h + small_t + pad + pad // 2) if hist else 0

    cell_w, cell_h = thumb + pad, thumb + caption_h + pad
    width = max(pad + columns * cell_w, pad + len(hist) * (small_t + pad // 2)) if hist else pad + columns * cell_w
    height = title_h + strip_h + pad + rows * cell_h
    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)

    if title:
        draw.rectangle([0, 0, width, title_h - 1], fill=_TITLE_BG)
        draw.text((pad, pad), _fit(draw, title, title_font, width - 2 * pad), fill=_TITLE_TEXT, font=title_font)
    if subtitle:
        y_sub = title_h - line_h - (pad // 2 if title else 0)
        draw.text(
            (pad, y_sub), _fit(draw, subtitle, font, width - 2 * pad), fill=_TITLE_TEXT if title else _TEXT, font=font
        )

    if hist:
        y0 = title_h + pad // 2
        n_liked = sum(1 for _, liked in hist if liked)
        draw.text(
            (pad, y0),
            _fit(draw, f"history: {n_liked} liked (+), {len(hist) - n_liked} disliked (-)", font, width - 2 * pad),
            fill=_TEXT,
            font=font,
        )
        y0 += line_h
        for j, (image, liked) in enumerate(hist):
            x0 = pad + j * (small_t + pad // 2)
            colour = _LIKED if liked else _DISLIKED
            draw.rectangle([x0 - 2, y0 - 2, x0 + small_t + 1, y0 + small_t + 1], outline=colour, width=3)
            tile = _thumbnail(image, small_t)
            sheet.paste(tile, (x0 + (small_t - tile.width) // 2, y0 + (small_t - tile.height) // 2))
            mark = "+" if liked else "-"
            draw.rectangle([x0, y0, x0 + line_h, y0 + line_h], fill=colour)
            draw.text((x0 + line_h // 4, y0), mark, fill=(255, 255, 255), font=font)

    for i, (image, caption) in enumerate(items):
        r, c = divmod(i, columns)
        x0 = pad + c * cell_w
        y0 = title_h + strip_h + pad + r * cell_h
        draw.rectangle([x0, y0, x0 + thumb - 1, y0 + thumb - 1], fill=_TILE)
        small = _thumbnail(image, thumb)
        sheet.paste(small, (x0 + (thumb - small.width) // 2, y0 + (thumb - small.height) // 2))
        for k, line in enumerate(caption.split("\n")):
            draw.text((x0, y0 + thumb + pad // 3 + k * line_h), _fit(draw, line, font, thumb), fill=_TEXT, font=font)

    path = Path(path)
    with atomic_path(path) as tmp:
        options = {"quality": 90} if fmt in ("JPEG", "WEBP") else {}
        sheet.save(tmp, format=fmt, **options)
    return path
