"""Materialized evaluation tasks: which candidates, which history, which answer.

Rules (docs/data.md explains why):
- A task belongs to one val/test user; its candidates and history come from
  that user's pairs in the same split, in stored order.
- 1v1: the liked and the disliked image of one pair (the target pair).
- 1v3: the target pair's liked and disliked image plus two more of the
  user's images that never won any of the user's comparisons in the split,
  preferring images of the target's prompt, then any other prompt.
- History: N_ref of the user's other pairs, none containing any candidate
  image, sampled by a generator seeded from (seed, split, protocol, pair id).
  The variants N_ref in {1, 2, 4, ...} are prefixes of the full history and
  share the target and the candidate order, so an N_ref sweep compares like
  with like. A target without enough history pairs is skipped (counted).
- The candidate order is shuffled with the same generator, so the liked
  image is not always first.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Iterator

from prefcli.data.dataset import PROTOCOLS, n_ref_variants


def _rng(seed: int, split: str, protocol: str, pair_id: str) -> random.Random:
    # A str seed is hashed with sha512 by `random`: stable across runs and Python processes.
    return random.Random(f"{seed}|{split}|{protocol}|{pair_id}")


def build_tasks(eval_pairs: Iterable[dict], n_ref: int, seed: int) -> tuple[list[dict], dict]:
    """Rows for tasks.parquet from val/test pair rows; also counts per split and protocol (tasks and skipped targets)."""
    stats: dict = {}
    return list(iter_tasks(eval_pairs, n_ref, seed, stats)), stats


def iter_tasks(eval_pairs: Iterable[dict], n_ref: int, seed: int, stats: dict) -> Iterator[dict]:
    """Task rows one at a time, user by user (sorted by split, user); `stats` is filled as they go."""
    variants = n_ref_variants(n_ref)
    by_user: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for p in eval_pairs:
        by_user[(p["split"], p["user_id"])].append(p)

    for (split, user), pool in sorted(by_user.items()):
        s = stats.setdefault(split, {f"{pr}{k}": 0 for pr in PROTOCOLS for k in ("_targets", "_skipped")})
        liked_ever = {p["liked_image_id"] for p in pool}
        prompt_of: dict[str, str] = {}
        losers: list[str] = []
        for p in pool:
            for img in (p["liked_image_id"], p["disliked_image_id"]):
                prompt_of.setdefault(img, p["prompt"])
            d = p["disliked_image_id"]
            if d not in liked_ever and d not in losers:
                losers.append(d)
        for t in pool:
            for protocol in PROTOCOLS:
                rng = _rng(seed, split, protocol, t["pair_id"])
                cands = [t["liked_image_id"], t["disliked_image_id"]]
                if protocol == "1v3":
                    extra = _distractors(rng, losers, prompt_of, t, set(cands))
                    if extra is None:
                        s["1v3_skipped"] += 1
                        continue
                    cands += extra
                banned = set(cands)
                hist_pool = [
                    p
                    for p in pool
                    if p is not t and p["liked_image_id"] not in banned and p["disliked_image_id"] not in banned
                ]
                if len(hist_pool) < n_ref:
                    s[f"{protocol}_skipped"] += 1
                    continue
                history = [p["pair_id"] for p in rng.sample(hist_pool, n_ref)]
                order = list(range(len(cands)))
                rng.shuffle(order)
                shuffled = [cands[i] for i in order]
                liked_index = order.index(0)
                target_id = f"{split}-{protocol}-{t['pair_id']}"
                s[f"{protocol}_targets"] += 1
                for k in variants:
                    yield (
                        {
                            "task_id": f"{target_id}-n{k}",
                            "target_id": target_id,
                            "split": split,
                            "protocol": protocol,
                            "n_ref": k,
                            "user_id": user,
                            "seen": t["seen"],
                            "target_pair_id": t["pair_id"],
                            "history_pair_ids": history[:k],
                            "candidate_image_ids": shuffled,
                            "candidate_prompts": [prompt_of[c] for c in shuffled],
                            "liked_index": liked_index,
                        }
                    )


def _distractors(
    rng: random.Random, losers: list[str], prompt_of: dict[str, str], target: dict, taken: set[str]
) -> list[str] | None:
    same = [x for x in losers if x not in taken and prompt_of[x] == target["prompt"]]
    other = [x for x in losers if x not in taken and prompt_of[x] != target["prompt"]]
    picked = rng.sample(same, min(2, len(same)))
    if len(picked) < 2:
        if len(other) < 2 - len(picked):
            return None
        picked += rng.sample(other, 2 - len(picked))
    return picked
