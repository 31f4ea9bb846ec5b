"""Users, histories and the fixed target that attention and clustering read, from a dataset.

A user's history is the one of their first materialized task at the chosen
N_ref (what `prefcli eval` conditions on); the target is the same image for
every user, so differences between users come from their histories alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefcli.errors import ConfigError, DataError


@dataclass
class UserInput:
    user_id: str
    seen: bool | None
    history: Any  # UserHistory (pairs of Candidates)


@dataclass
class Target:
    candidate: Any  # Candidate
    prompt: str | None
    source: str  # "dataset image <id>", a file path, or "first task of user <u>"


def user_inputs(
    ds: Any, split: str, n_ref: int | None, users: Sequence[str] | None = None, max_users: int | None = None
) -> tuple[list[UserInput], list[dict]]:
    """(one UserInput per user, skipped [{"item", "reason"}]); `users` picks and orders them."""
    tasks = ds.tasks(split, "1v1", n_ref)
    first: dict[str, Any] = {}
    for t in tasks:
        first.setdefault(str(t.user_id), t)
    if not first:
        raise DataError(f"{ds.root}: no {split} tasks at N_ref {n_ref}")
    skipped = []
    if users:
        chosen = []
        for u in users:
            if u in first:
                chosen.append(u)
            else:
                skipped.append({"item": f"user {u}", "reason": f"no {split} task at N_ref {n_ref}"})
        if not chosen:
            known = ", ".join(list(first)[:8])
            raise ConfigError(f"--users: none of {', '.join(users)} has a {split} task (some that do: {known})")
    else:
        chosen = list(first)
    if max_users is not None:
        chosen = chosen[:max_users]
    return [UserInput(u, first[u].seen, first[u].history) for u in chosen], skipped


def fixed_target(ds: Any, spec: str | None, split: str, n_ref: int | None) -> Target:
    """--target: a dataset image id, an image file, or (default) the first test task's first candidate."""
    from prefcli.types import Candidate

    if spec:
        if Path(spec).is_file():
            from prefcli.images import load_image

            img = load_image(spec)  # one clear error for an unreadable file
            return Target(Candidate.from_image(img), None, str(spec))
        if ds.image_path(spec).is_file():
            return Target(ds.candidate(spec), None, f"dataset image {spec}")
        raise ConfigError(f"--target {spec}: neither an image file nor an image id of {ds.root}")
    rows = ds.task_rows(split, "1v1", n_ref)
    if not rows:
        raise DataError(f"{ds.root}: no {split} tasks to take a target from")
    r = rows[0]
    iid, prompt = r["candidate_image_ids"][0], r["candidate_prompts"][0]
    return Target(ds.candidate(iid, prompt), prompt, f"dataset image {iid} (first candidate of task {r['task_id']})")


def world_of(ds: Any, world: str | os.PathLike | None = None) -> Path | None:
    """The synthetic world a dataset was built from (its recorded source), or None for real data."""
    if world is not None:
        p = Path(world)
        if not (p / "world.json").is_file():
            raise ConfigError(f"--world {p}: no world.json (give the folder `prefcli data synthetic --out` wrote)")
        return p
    src = (getattr(ds, "info", None) or {}).get("source")
    loc = src.get("location") if isinstance(src, dict) else None
    if loc and (Path(loc) / "world.json").is_file():
        return Path(loc)
    return None
