"""Materialized tasks for rated datasets (PAMELA, the synthetic world's ratings).

Rules (docs/data.md explains why):
- A task belongs to one val/test user and holds a history of N_ref of that
  user's ratings that never rate a target image.
- A *seen* user (with training ratings) draws the history from their
  training ratings; the targets are all of their ratings in the split.
  An *unseen* user has no training ratings: a seeded draw of N_ref of their
  own ratings in the split is the history, the rest are the targets. A user
  left with fewer than 2 targets (or too few ratings for a history) is
  skipped and counted.
- `rating` protocol: one task per user, the candidates are the targets (in
  stored order) with their true ratings.
- `1v1` protocol: up to `pairs_per_user` pairs of the user's targets with
  different ratings, each pair's order shuffled; the higher-rated image is
  the liked one. Same history as the user's rating task.
- N_ref variants 1, 2, 4, ... are prefixes of the full history, so a sweep
  compares like with like. Every draw comes from a generator seeded from
  (seed, split, user), stable across runs and processes.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator

from prefcli.data.dataset import RATING_PROTOCOL, n_ref_variants


def _rng(seed: int, split: str, what: str, user: str) -> random.Random:
    return random.Random(f"{seed}|{split}|{what}|{user}")


def iter_rating_tasks(
    ratings: Iterable[dict], n_ref: int, pairs_per_user: int, seed: int, stats: dict
) -> Iterator[dict]:
    """tasks.parquet rows from ratings.parquet rows; `stats` gets per-split counts as they go."""
    variants = n_ref_variants(n_ref)
    train: dict[str, list[dict]] = defaultdict(list)
    evals: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in ratings:
        if r["split"] == "train":
            train[r["user_id"]].append(r)
        else:
            evals[(r["split"], r["user_id"])].append(r)
    for (split, user), pool in sorted(evals.items()):
        s = stats.setdefault(split, {"1v1": 0, RATING_PROTOCOL: 0, "users_skipped": 0, "rows": 0})
        seen = pool[0]["seen"]
        rng = _rng(seed, split, "history", user)
        if train.get(user):
            targets = list(pool)
            banned = {r["image_id"] for r in targets}
            hist_pool = [r for r in train[user] if r["image_id"] not in banned]
            if len(hist_pool) < n_ref:
                s["users_skipped"] += 1
                continue
            history = rng.sample(hist_pool, n_ref)
        else:
            if len(pool) < n_ref + 2:
                s["users_skipped"] += 1
                continue
            order = list(pool)
            rng.shuffle(order)
            history = order[:n_ref]
            hist_images = {r["image_id"] for r in history}
            targets = sorted(
                (r for r in order[n_ref:] if r["image_id"] not in hist_images), key=lambda r: r["rating_id"]
            )
        if len(targets) < 2:
            s["users_skipped"] += 1
            continue
        hist_ids = [r["rating_id"] for r in history]
        base = {
            "split": split,
            "user_id": user,
            "seen": seen,
            "target_pair_id": None,
            "history_pair_ids": [],
            "history_liked_ids": [],
            "history_disliked_ids": [],
        }
        target_id = f"{split}-{RATING_PROTOCOL}-{user}"
        s[RATING_PROTOCOL] += 1
        for k in variants:
            s["rows"] += 1
            yield {
                **base,
                "task_id": f"{target_id}-n{k}",
                "target_id": target_id,
                "protocol": RATING_PROTOCOL,
                "n_ref": k,
                "candidate_image_ids": [r["image_id"] for r in targets],
                "candidate_prompts": [r["prompt"] for r in targets],
                "liked_index": -1,
                "history_rating_ids": hist_ids[:k],
                "candidate_ratings": [float(r["rating"]) for r in targets],
            }
        pairs = [
            (a, b)
            for a, b in itertools.combinations(targets, 2)
            if a["rating"] != b["rating"] and a["image_id"] != b["image_id"]
        ]
        prng = _rng(seed, split, "1v1", user)
        for i, (a, b) in enumerate(prng.sample(pairs, min(pairs_per_user, len(pairs)))):
            liked, disliked = (a, b) if a["rating"] > b["rating"] else (b, a)
            cands = [liked, disliked]
            if prng.random() < 0.5:
                cands.reverse()
            target_id = f"{split}-1v1-{user}-{i:04d}"
            s["1v1"] += 1
            for k in variants:
                s["rows"] += 1
                yield {
                    **base,
                    "task_id": f"{target_id}-n{k}",
                    "target_id": target_id,
                    "protocol": "1v1",
                    "n_ref": k,
                    "candidate_image_ids": [c["image_id"] for c in cands],
                    "candidate_prompts": [c["prompt"] for c in cands],
                    "liked_index": cands.index(liked),
                    "history_rating_ids": hist_ids[:k],
                    "candidate_ratings": None,
                }
