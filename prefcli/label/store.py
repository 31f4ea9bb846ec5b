"""A person's labels on disk: the append-only `labels.jsonl` and the folders rebuilt from it.

    PERSON/labels.jsonl    one JSON object per line, appended and flushed per label;
                           {"event": "label", ...} or {"event": "undo", "undoes": SEQ}
    PERSON/liked/          the preferred image of every left/right answer,
    PERSON/disliked/       the other one, paired by file name (NNNNN-<id>.ext), as
                           `rank --likes/--dislikes` pair them (sorted order)
    PERSON/prompts.json    {file name: prompt} for both folders (rank finds it beside them)
    PERSON/.prefcli-written.json   what label wrote, so nothing else is ever touched

The log is the truth: the folders and prompts.json are rebuilt from it after
every label (only the files that changed are written; each atomically), ties
and skips stay in the log only, and an undo is itself a log line. A killed
server loses at most the line in flight: a torn last line is dropped on the
next start. Images are copied from the pool by their id; a path written in
the log is never opened.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefcli.errors import DataError, PrefcliError
from prefcli.jsonio import loads

LOG = "labels.jsonl"
LIKED = "liked"
DISLIKED = "disliked"
PROMPTS = "prompts.json"
LOG_VERSION = 1
CHOICES = ("left", "right", "tie", "skip")


def file_name(seq: int, image_id: str, path: str) -> str:
    """The name of a label's image in liked/ or disliked/: label order first, so sorted order pairs them."""
    from prefcli.images import IMAGE_SUFFIXES

    suffix = Path(path).suffix.lower()
    suffix = suffix if suffix in IMAGE_SUFFIXES else ".png"  # only the name's ending is used, never the path
    return f"{seq:05d}-{image_id[:12]}{suffix}"


_ID = re.compile(r"^[0-9a-f]{64}$")


def _valid(r: object) -> bool:
    if not isinstance(r, dict) or not isinstance(r.get("seq"), int):
        return False
    if r.get("event") == "undo":
        return isinstance(r.get("undoes"), int)
    return (
        r.get("event") == "label"
        and r.get("choice") in CHOICES
        and all(
            isinstance(r.get(s), dict) and isinstance(r[s].get("id"), str) and _ID.match(r[s]["id"])
            for s in ("left", "right")
        )
    )


def read_log(path: Path) -> tuple[list[dict], int]:
    """A log's records, and the byte length of a torn last line (0 if none)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    lines = data.split(b"\n")
    torn = 0
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        torn = len(lines[-1])  # no newline: the write was cut; a complete line always ends in one
        lines.pop()
    records = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            r = loads(line, f"{path}: line {i}")
        except DataError:
            raise DataError(
                f"{path}: line {i} is not a JSON object; the log is written by "
                "prefcli label only (fix or remove that line)"
            ) from None
        if not _valid(r):
            raise DataError(f"{path}: line {i} is not a label record")
        records.append(r)
    return records, torn


def effective(records: list[dict]) -> list[dict]:
    """Label records in order with the undone ones taken out."""
    out: list[dict] = []
    for r in records:
        if r["event"] == "label":
            out.append(r)
        elif r["event"] == "undo":
            out = [x for x in out if x["seq"] != r.get("undoes")]
    return out


class LabelStore:
    """The files of one person's labels under `out`."""

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        if os.path.lexists(self.out) and not self.out.is_dir():
            raise PrefcliError(f"{self.out}: --out exists and is not a folder")
        self.out.mkdir(parents=True, exist_ok=True)
        self._check_ours()
        self.records, self._torn = self._read()

    # -- ownership -----------------------------------------------------------------
    def _ours(self) -> set[str]:
        from prefcli.atomic import written_by_prefcli

        return written_by_prefcli(self.out) or set()

    def _check_ours(self) -> None:
        """Refuse an --out whose log, prompts or folders hold files label did not write."""
        ours = self._ours()
        foreign = [n for n in (LOG, PROMPTS) if os.path.lexists(self.out / n) and n not in ours]
        for folder in (LIKED, DISLIKED):
            d = self.out / folder
            if os.path.lexists(d) and not d.is_dir():
                foreign.append(folder)
            elif d.is_dir():
                foreign += [f"{folder}/{e.name}" for e in os.scandir(d) if f"{folder}/{e.name}" not in ours]
        if foreign:
            shown = ", ".join(sorted(foreign)[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise PrefcliError(
                f"{self.out}: holds files prefcli label did not write ({shown}); it never replaces "
                "them: choose a new --out folder, or move those files away"
            )

    def _set_ours(self, files: set[str]) -> None:
        from prefcli import atomic

        atomic.write_text(
            self.out / atomic.MARKER, json.dumps({"by": "label", "files": sorted(files)}, indent=1) + "\n"
        )

    # -- the log -------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.out / LOG

    def _read(self) -> tuple[list[dict], int]:
        return read_log(self.log_path)

    def next_seq(self) -> int:
        return max((r["seq"] for r in self.records), default=0) + 1

    def append(self, record: dict) -> dict:
        """Add one record (its `seq` is assigned here) and make it durable before returning."""
        record = {"v": LOG_VERSION, "seq": self.next_seq(), **record}
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        if LOG not in self._ours():
            self._set_ours(self._ours() | {LOG, PROMPTS})  # claim before creating: a kill leaves it ours
        with open(self.log_path, "ab") as f:
            if self._torn:
                f.truncate(f.seek(0, os.SEEK_END) - self._torn)  # our own torn line, never a complete one
                self._torn = 0
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.records.append(record)
        return record

    def effective(self) -> list[dict]:
        """Label records in order with the undone ones taken out."""
        return effective(self.records)

    # -- the folders ----------------------------------------------------------------
    def materialise(self, source_of: Callable[[str], str | None]) -> list[str]:
        """Rewrite liked/, disliked/ and prompts.json from the log; returns problems (one line each).

        `source_of(image_id)` gives the pool file of an image (None if it left the pool).
        """
        from prefcli import atomic, images
        from prefcli.errors import ImageError

        want: dict[str, tuple[str, str]] = {}  # relative name -> (image id, prompt)
        for r in self.effective():
            if r.get("choice") not in ("left", "right"):
                continue
            win, lose = (r["left"], r["right"]) if r["choice"] == "left" else (r["right"], r["left"])
            for folder, side in ((LIKED, win), (DISLIKED, lose)):
                want[f"{folder}/{file_name(r['seq'], side['id'], side.get('path', ''))}"] = (
                    side["id"],
                    r.get("prompt") or "",
                )
        before = self._ours()
        self._set_ours(before | set(want) | {LOG, PROMPTS})
        problems: list[str] = []
        have = set()
        for rel, (image_id, _) in sorted(want.items()):
            dst = self.out / rel
            if dst.is_file():
                have.add(rel)
                continue
            src = source_of(image_id)
            if src is None:
                problems.append(f"{rel}: image {image_id[:12]} is no longer in the pool; not written")
                continue
            try:
                atomic.write_bytes(dst, images.read_image_file(src))
                have.add(rel)
            except ImageError as e:
                problems.append(str(e))
        for rel in sorted(before - set(want)):
            if rel.startswith((LIKED + "/", DISLIKED + "/")):
                try:
                    (self.out / rel).unlink()
                except FileNotFoundError:
                    pass
        for folder in (LIKED, DISLIKED):
            (self.out / folder).mkdir(exist_ok=True)
        prompts = {Path(rel).name: want[rel][1] for rel in sorted(have) if want[rel][1]}
        atomic.write_text(self.out / PROMPTS, json.dumps(prompts, indent=1, ensure_ascii=False) + "\n")
        self._set_ours(have | {LOG, PROMPTS})
        return problems

    def counts(self) -> dict[str, Any]:
        eff = self.effective()
        by = {c: sum(1 for r in eff if r.get("choice") == c) for c in CHOICES}
        return {"answered": by["left"] + by["right"] + by["tie"], "pairs": by["left"] + by["right"], **by}
