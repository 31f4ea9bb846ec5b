"""A folder of image files as Candidates: every file checked once, the bad ones reported, none fatal.

Apart from prefcli.images because a Candidate itself decodes through prefcli.images:
images knows files and pixels, this module knows both it and the types built on it.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefcli import images
from prefcli.errors import ImageError
from prefcli.types import Candidate


def scan_folder(
    folder: str | os.PathLike, recursive: bool = False, *, keep_pixels: bool = False
) -> tuple[list[Candidate], list[tuple[str, str]]]:
    """Check every image in a folder: (good candidates, [(path, reason) for each bad file]).

    Bad files include the entries the listing leaves out (see prefcli.images.find_images).

    By default only each file's header is read (format, size, limits): the
    pixels are decoded once, when a scorer needs them, and dropped after, so a
    large folder does not sit in memory. With `keep_pixels` (a history: a few
    images, paired now) each file is decoded now, once, and the candidate keeps
    the pixels until it is released. One bad file never stops the scan.
    """
    good: list[Candidate] = []
    paths, bad = images.find_images(folder, recursive=recursive)
    for path in paths:
        try:
            data = images.read_image_file(path)
            if keep_pixels:
                original, rgb = images.decode_kept(data, str(path))
            else:
                images.check_image_bytes(data, name=str(path))
        except ImageError as e:
            bad.append((str(path), getattr(e, "reason", str(e))))
            continue
        # Same fields as Candidate.from_path, without reading the file twice.
        c = Candidate(
            image_id=images.content_id(data), path=str(path), loader=lambda p=path: images.load_image(p, keep_mode=True)
        )
        if keep_pixels:
            c._image, c._rgb = original, rgb
        good.append(c)
    root = Path(folder).expanduser()
    bad.sort(key=lambda b: Path(b[0]).relative_to(root).parts if Path(b[0]).is_relative_to(root) else (b[0],))
    return good, bad
