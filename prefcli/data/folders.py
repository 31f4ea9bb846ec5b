"""User histories from plain folders: `--likes DIR --dislikes DIR`.

A practitioner's history is two folders of images. Pairs are formed by sorted
order (the i-th liked image with the i-th disliked image), or explicitly by a
small pairing file. Prompts, when a scorer needs them, come from a prompts file
(JSON {file: prompt} or CSV `file,prompt`): given explicitly, or found as
`prompts.json` / `prompts.csv` inside or next to the folders.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prefcli.errors import DataError, HistoryError, ImageError
from prefcli.types import Candidate, HistoryPair, UserHistory

PROMPT_FILE_NAMES = ("prompts.json", "prompts.csv")

Bad = list[tuple[str, str]]


@dataclass
class PromptMap:
    """Prompts keyed by file: a key may be a bare file name or a path relative to `base`.

    `fallbacks` are asked, in order, for files this map does not name, so an
    explicit prompts file can sit in front of ones found beside the folders.
    """

    prompts: dict[str, str] = field(default_factory=dict)
    base: Path | None = None
    source: str = ""
    fallbacks: list[PromptMap] = field(default_factory=list)

    def _own(self, path: str | os.PathLike) -> str | None:
        p = Path(path)
        if self.base is not None:
            try:
                rel = p.resolve().relative_to(self.base.resolve()).as_posix()
            except ValueError:
                rel = None
            if rel is not None and rel in self.prompts:
                return self.prompts[rel]
        if str(path) in self.prompts:
            return self.prompts[str(path)]
        return self.prompts.get(p.name)

    def get(self, path: str | os.PathLike) -> str | None:
        found = self._own(path)
        for other in self.fallbacks:
            if found is not None:
                break
            found = other.get(path)
        return found

    def __len__(self) -> int:
        return len(self.prompts) + sum(len(f) for f in self.fallbacks)

    @classmethod
    def chain(cls, *maps: PromptMap | None) -> PromptMap | None:
        """One map asking each given map in turn (None entries ignored)."""
        present = [m for m in maps if m is not None]
        if not present:
            return None
        if len(present) == 1:
            return present[0]
        return cls(fallbacks=present)


def _rows_from_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                return []
            reader.fieldnames = [(n or "").strip().lower() for n in reader.fieldnames]
            return [{k: (v or "").strip() for k, v in row.items() if k} for row in reader]
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
    except csv.Error as e:
        raise DataError(f"{path}: malformed CSV ({e})") from None


def _read_json(path: Path):
    from prefcli.jsonio import read_json

    return read_json(path)


def _existing_file(path: str | os.PathLike, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{path}: {what} not found")
    if not p.is_file():
        raise DataError(f"{path}: {what} must be a file")
    return p


def load_prompts(path: str | os.PathLike) -> PromptMap:
    """Read a prompts file: JSON object {file: prompt} or CSV with columns `file,prompt`."""
    p = _existing_file(path, "prompts file")
    if p.suffix.lower() == ".json":
        data = _read_json(p)
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise DataError(f"{path}: a JSON prompts file must be one object mapping file names to prompt strings")
        prompts = dict(data)
    elif p.suffix.lower() == ".csv":
        rows = _rows_from_csv(p)
        if rows and not {"file", "prompt"} <= set(rows[0]):
            raise DataError(f"{path}: a CSV prompts file needs the header 'file,prompt'; found {', '.join(rows[0])}")
        prompts = {}
        for i, row in enumerate(rows, start=2):
            if not row.get("file"):
                raise DataError(f"{path}: line {i} has no file name")
            prompts[row["file"]] = row.get("prompt", "")
    else:
        raise DataError(
            f"{path}: prompts file must be .json (an object {{file: prompt}}) or .csv (columns file,prompt)"
        )
    return PromptMap(prompts=prompts, base=p.parent, source=str(p))


def find_prompt_files(*folders: str | os.PathLike) -> list[Path]:
    """`prompts.json`/`prompts.csv` inside each folder, then beside it (its parent), without repeats."""
    found: list[Path] = []
    seen: set[Path] = set()
    places = [Path(f) for f in folders] + [Path(f).parent for f in folders]
    for place in places:
        for name in PROMPT_FILE_NAMES:
            cand = place / name
            if cand.is_file() and cand.resolve() not in seen:
                seen.add(cand.resolve())
                found.append(cand)
    return found


def discover_prompts(*folders: str | os.PathLike) -> PromptMap | None:
    """All prompts files found inside or beside the folders, nearest first, merged."""
    return PromptMap.chain(*(load_prompts(p) for p in find_prompt_files(*folders)))


def as_prompt_map(prompts) -> PromptMap | None:
    """None, a PromptMap, a {file: prompt} mapping or a prompts file path -> PromptMap or None."""
    if prompts is None or isinstance(prompts, PromptMap):
        return prompts
    if isinstance(prompts, Mapping):
        return PromptMap(prompts={str(k): str(v) for k, v in prompts.items()})
    return load_prompts(prompts)


def _scan(folder: str | os.PathLike, what: str, recursive: bool) -> tuple[list[Candidate], Bad]:
    from prefcli.image_folder import scan_folder

    try:
        return scan_folder(folder, recursive=recursive, keep_pixels=True)  # a history: decoded once, now
    except ImageError as e:
        raise HistoryError(f"{what} folder {e}") from None


def _load_one(path: Path) -> Candidate:
    """A history image named by a pairing file, checked now by decoding it, once: the candidate keeps the pixels."""
    from prefcli import images

    data = images.read_image_file(path)
    original, rgb = images.decode_kept(data, str(path))
    c = Candidate(
        image_id=images.content_id(data), path=str(path), loader=lambda p=path: images.load_image(p, keep_mode=True)
    )
    c._image, c._rgb = original, rgb
    return c


def _read_pairs(path: Path) -> list[tuple[str, str, str | None]]:
    """Rows (liked, disliked, prompt) from a CSV with header liked,disliked[,prompt] or JSON."""
    rows: list[tuple[str, str, str | None]] = []
    if path.suffix.lower() == ".json":
        data = _read_json(path)
        if isinstance(data, dict) and "pairs" in data:
            data = data["pairs"]
        if not isinstance(data, list):
            raise DataError(f"{path}: a JSON pairs file must be a list of {{liked, disliked, prompt}} objects")
        for i, item in enumerate(data):
            if isinstance(item, dict) and isinstance(item.get("liked"), str) and isinstance(item.get("disliked"), str):
                prompt = item.get("prompt")
                rows.append((item["liked"], item["disliked"], str(prompt) if prompt is not None else None))
            elif isinstance(item, (list, tuple)) and 2 <= len(item) <= 3 and all(isinstance(x, str) for x in item):
                rows.append((item[0], item[1], item[2] if len(item) == 3 else None))
            else:
                raise DataError(
                    f'{path}: pair {i} must be {{"liked": FILE, "disliked": FILE, "prompt": TEXT}} or [liked, disliked(, prompt)]'
                )
    elif path.suffix.lower() == ".csv":
        table = _rows_from_csv(path)
        if table and not {"liked", "disliked"} <= set(table[0]):
            raise DataError(
                f"{path}: a CSV pairs file needs the header 'liked,disliked[,prompt]'; found {', '.join(table[0])}"
            )
        for i, row in enumerate(table, start=2):
            if not row.get("liked") or not row.get("disliked"):
                raise DataError(f"{path}: line {i} needs both a liked and a disliked file")
            rows.append((row["liked"], row["disliked"], row.get("prompt") or None))
    else:
        raise DataError(f"{path}: pairs file must be .csv (columns liked,disliked[,prompt]) or .json")
    if not rows:
        raise HistoryError(f"{path}: the pairs file lists no pairs")
    return rows


def _resolve(name: str, folder: Path | None, pairs_file: Path) -> Path:
    """A file named in a pairing file: absolute, inside its folder, or relative to the pairing file."""
    p = Path(name).expanduser()
    if p.is_absolute():
        return p
    tries = ([folder / p] if folder is not None else []) + [pairs_file.parent / p]
    for t in tries:
        if t.exists():
            return t
    return tries[0]


def _with_prompt(c: Candidate, prompts) -> Candidate:
    if prompts is not None and c.prompt is None and c.path is not None:
        c.prompt = prompts.get(c.path)
    return c


def history_from_folders(
    likes: str | os.PathLike | None,
    dislikes: str | os.PathLike | None,
    prompts=None,
    *,
    pairs: str | os.PathLike | None = None,
    recursive: bool = False,
    discover: bool = True,
    user_id: str | None = None,
) -> tuple[UserHistory, Bad]:
    """Build a UserHistory from a folder of liked and a folder of disliked images.

    Returns the history and the bad files that were skipped, as (path, reason).
    Without `pairs`, the i-th liked image (sorted by name) is paired with the
    i-th disliked one, so the folders must hold equally many readable images.
    With `pairs` (CSV `liked,disliked[,prompt]` or JSON), exactly the listed
    pairs are used; names are looked up in their folder, else relative to the
    pairing file; a pair with an unreadable image is skipped and reported.

    `prompts` is a prompts file path, a {file: prompt} mapping, or a PromptMap;
    with `discover`, prompts.json/prompts.csv inside or beside the folders are
    also consulted (after `prompts`). A pair's prompt is the pairing file's
    prompt, else the liked image's, else the disliked image's.
    """
    prompt_map = as_prompt_map(prompts)
    folders = [Path(f) for f in (likes, dislikes) if f is not None]
    if discover and folders:
        prompt_map = PromptMap.chain(prompt_map, discover_prompts(*folders))

    bad: Bad = []
    out: list[HistoryPair] = []
    if pairs is not None:
        pairs_file = _existing_file(pairs, "pairs file")
        likes_dir = Path(likes) if likes is not None else None
        dislikes_dir = Path(dislikes) if dislikes is not None else None
        cache: dict[Path, Candidate | None] = {}

        def get(name: str, folder: Path | None) -> Candidate | None:
            path = _resolve(name, folder, pairs_file)
            if path not in cache:
                try:
                    cache[path] = _with_prompt(_load_one(path), prompt_map)
                except ImageError as e:
                    bad.append((str(path), getattr(e, "reason", str(e))))
                    cache[path] = None
            return cache[path]

        for i, (liked_name, disliked_name, prompt) in enumerate(_read_pairs(pairs_file)):
            liked, disliked = get(liked_name, likes_dir), get(disliked_name, dislikes_dir)
            if liked is None or disliked is None:
                continue
            out.append(
                HistoryPair(
                    liked=liked,
                    disliked=disliked,
                    prompt=prompt or liked.prompt or disliked.prompt,
                    pair_id=f"pair-{i}",
                )
            )
        if not out:
            raise HistoryError(f"{pairs}: none of the listed pairs has two readable images")
        return UserHistory(pairs=tuple(out), user_id=user_id), bad

    if likes is None or dislikes is None:
        raise HistoryError("a history needs both --likes DIR and --dislikes DIR (or a --pairs FILE)")
    liked, bad_liked = _scan(likes, "likes", recursive)
    disliked, bad_disliked = _scan(dislikes, "dislikes", recursive)
    bad = bad_liked + bad_disliked
    if not liked or not disliked:
        empty = [
            f"{what} folder {folder}"
            for what, folder, got in (("likes", likes, liked), ("dislikes", dislikes, disliked))
            if not got
        ]
        raise HistoryError(
            f"no readable images in the {' and the '.join(empty)}; a history needs at least one liked and one disliked image"
        )
    if len(liked) != len(disliked):
        # Name the unreadable files: they are often why the counts differ.
        unreadable = "".join(f"; skipped {p}: {why}" for p, why in bad[:3])
        if len(bad) > 3:
            unreadable += f" and {len(bad) - 3} more"
        raise HistoryError(
            f"found {len(liked)} liked and {len(disliked)} disliked images in {likes} / {dislikes}; "
            f"pairs need equal numbers — remove some or give --pairs FILE{unreadable}"
        )
    for i, (lk, dk) in enumerate(zip(liked, disliked)):
        _with_prompt(lk, prompt_map)
        _with_prompt(dk, prompt_map)
        out.append(HistoryPair(liked=lk, disliked=dk, prompt=lk.prompt or dk.prompt, pair_id=f"pair-{i}"))
    return UserHistory(pairs=tuple(out), user_id=user_id), bad
