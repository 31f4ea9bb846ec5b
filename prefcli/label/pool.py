"""The pool of candidate images a person labels: every image by content id, grouped by prompt.

Images enter through `prefcli.images` (bad files are skipped and reported).
The prompt of an image comes from a prompts file (the reader `rank` uses:
JSON {file: prompt} or CSV file,prompt) or, without one, from the name of
the subfolder it sits in; images directly in POOL without a prompt share
one group named after the folder. Only same-prompt images are ever paired.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from prefcli.errors import ImageError


@dataclass(frozen=True)
class PoolImage:
    image_id: str  # sha256 of the bytes: the only name a client ever uses
    path: str  # resolved, inside the pool folder
    prompt: str
    group: int  # index into Pool.prompts


@dataclass
class Pool:
    root: Path
    images: list[PoolImage]
    prompts: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_id = {im.image_id: im for im in self.images}
        self.index = {im.image_id: i for i, im in enumerate(self.images)}

    def groups(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in self.prompts]
        for i, im in enumerate(self.images):
            out[im.group].append(i)
        return out


def load_pool(folder: str | os.PathLike, prompts: str | os.PathLike | None = None) -> Pool:
    """Scan `folder` (and its subfolders) into a Pool; an empty or pairless pool is an error."""
    from prefcli.data.folders import load_prompts
    from prefcli.image_folder import scan_folder

    root = Path(folder).expanduser()
    good, bad = scan_folder(root, recursive=True)
    prompt_map = load_prompts(prompts) if prompts is not None else None
    resolved_root = root.resolve()
    skipped = list(bad)
    groups: dict[str, int] = {}
    out: list[PoolImage] = []
    seen: dict[str, str] = {}
    for c in good:
        path = Path(c.path).resolve()
        try:
            rel = path.relative_to(resolved_root)
        except ValueError:  # a symlinked file pointing out of the pool is not served
            skipped.append((c.path, "links outside the pool folder, not served"))
            continue
        if c.image_id in seen:
            skipped.append((c.path, f"same image as {seen[c.image_id]}"))
            continue
        if prompt_map is not None:
            prompt = prompt_map.get(c.path)
            if prompt is None:
                skipped.append((c.path, f"no prompt for it in {prompts}"))
                continue
        else:
            prompt = rel.parent.as_posix() if rel.parent != Path(".") else root.resolve().name
        seen[c.image_id] = c.path
        g = groups.setdefault(prompt, len(groups))
        out.append(PoolImage(c.image_id, str(path), prompt, g))
    pool = Pool(root=resolved_root, images=out, prompts=list(groups), skipped=skipped)
    if not out:
        raise ImageError(
            f"{folder}: no readable image in the pool folder"
            + (f" ({len(bad)} file(s) could not be read)" if bad else "")
        )
    if all(len(g) < 2 for g in pool.groups()):
        raise ImageError(
            f"{folder}: no prompt has two images, so there is no pair to compare "
            "(group images by subfolder or give --prompts FILE)"
        )
    return pool
