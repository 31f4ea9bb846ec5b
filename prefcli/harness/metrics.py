"""Top-k accuracy and its standard error. The harness owns these; scorers never do.

Ties rule: the liked candidate's rank is *pessimistic*,
rank = 1 + (number of other candidates scoring at least as well as it).
It is a hit at top-k when rank <= k. So a tie for first place is a top-1
miss: the liked image counts at top-1 only if it strictly wins. A NaN score
for the liked image is a miss at every k; a NaN for another candidate never
beats anything.

Standard errors come from a bootstrap over *users*: a user's tasks share one
history and one taste, so they are not independent, and users are the
independent unit. Each replicate draws users with replacement and pools all
their tasks; the standard error is the standard deviation of the replicate
accuracies. The draw is seeded, so the same seed gives the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_BOOTSTRAP = 1000
DEFAULT_SEED = 0


def liked_rank(scores: Sequence[float], liked_index: int, higher_is_better: bool = True) -> int:
    """Pessimistic 1-based rank of the liked candidate (ties and NaN count against it)."""
    n = len(scores)
    if not 0 <= liked_index < n:
        raise ValueError(f"liked_index {liked_index} out of range for {n} candidates")
    sign = 1.0 if higher_is_better else -1.0
    mine = float(scores[liked_index])
    if math.isnan(mine):
        return n
    mine *= sign
    above = 0
    for i, s in enumerate(scores):
        if i == liked_index:
            continue
        s = float(s)
        if not math.isnan(s) and sign * s >= mine:
            above += 1
    return 1 + above


def top1_hit(scores: Sequence[float], liked_index: int, higher_is_better: bool = True) -> bool:
    """A top-1 hit: the liked candidate strictly beats every other (a tie for first place is a miss)."""
    return liked_rank(scores, liked_index, higher_is_better) == 1


def hits_at(
    scores: Sequence[float], liked_index: int, ks: Iterable[int], higher_is_better: bool = True
) -> dict[int, bool]:
    rank = liked_rank(scores, liked_index, higher_is_better)
    return {k: rank <= k for k in ks}


def ks_for(n_candidates: int) -> tuple[int, ...]:
    """Which top-k a protocol reports: top-1 for 1-vs-1, top-1..(n-1) for 1-vs-n."""
    return (1,) if n_candidates <= 2 else tuple(range(1, n_candidates))


def random_expected(n_candidates: int, k: int) -> float:
    """Top-k accuracy of a scorer that ranks at random: k / n."""
    return min(k, n_candidates) / n_candidates


def bootstrap_se(
    hits: Sequence[float], users: Sequence[str], n_boot: int = DEFAULT_BOOTSTRAP, seed: int = DEFAULT_SEED
) -> float:
    """Standard error of mean(hits), resampling users (with all their tasks) with replacement."""
    hits = np.asarray(hits, dtype=np.float64)
    if hits.size == 0:
        return float("nan")
    _, inverse = np.unique(np.asarray(users, dtype=object).astype(str), return_inverse=True)
    n_users = int(inverse.max()) + 1
    if n_users < 2 or n_boot < 2:
        return float("nan")
    per_user_hits = np.bincount(inverse, weights=hits, minlength=n_users)
    per_user_n = np.bincount(inverse, minlength=n_users).astype(np.float64)
    rng = np.random.default_rng(seed)
    # counts[b, u] = how many times user u is drawn in replicate b.
    draws = rng.integers(0, n_users, size=(n_boot, n_users))
    counts = np.zeros((n_boot, n_users))
    np.add.at(counts, (np.repeat(np.arange(n_boot), n_users), draws.ravel()), 1.0)
    acc = (counts @ per_user_hits) / (counts @ per_user_n)
    return float(acc.std(ddof=1))


@dataclass(frozen=True)
class Accuracy:
    value: float  # fraction in [0, 1]
    se: float  # bootstrap standard error (fraction)
    n_tasks: int
    n_users: int

    def as_dict(self) -> dict:
        return {"value": self.value, "se": self.se, "n_tasks": self.n_tasks, "n_users": self.n_users}


def accuracy(
    hits: Sequence[bool], users: Sequence[str], n_boot: int = DEFAULT_BOOTSTRAP, seed: int = DEFAULT_SEED
) -> Accuracy:
    h = np.asarray(hits, dtype=np.float64)
    if h.size == 0:
        return Accuracy(float("nan"), float("nan"), 0, 0)
    return Accuracy(float(h.mean()), bootstrap_se(h, users, n_boot, seed), int(h.size), len(set(map(str, users))))


def seen_unseen_gap(
    seen: float | None, seen_se: float | None, unseen: float | None, unseen_se: float | None
) -> tuple[float | None, float | None]:
    """|seen - unseen| and its standard error; (None, None) without both sides, the error None without both errors.

    Seen and unseen users are disjoint, so their errors add in quadrature.
    """
    if seen is None or unseen is None:
        return None, None
    return abs(seen - unseen), math.hypot(seen_se, unseen_se) if seen_se is not None and unseen_se is not None else None


GROUPS = ("all", "seen", "unseen")


def in_group(seen: bool | None, group: str) -> bool:
    """Whether a task whose user is `seen` (True, False, or None: not known) counts in `group` of GROUPS."""
    return group == "all" or (seen is True and group == "seen") or (seen is False and group == "unseen")


def summarize(
    records: Sequence[dict], higher_is_better: bool = True, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = DEFAULT_SEED
) -> dict:
    """Metrics of per-task records ({"scores", "liked_index", "user_id", "seen"}).

    Returns {group: {"top1": Accuracy dict, ...}} for the groups "all", "seen"
    and "unseen" (a group with no tasks is left out).
    """
    if not records:
        return {}
    n_cand = max(len(r["scores"]) for r in records)
    ks = ks_for(n_cand)
    rows = []
    for r in records:
        h = hits_at(r["scores"], r["liked_index"], ks, higher_is_better)
        rows.append((str(r.get("user_id")), r.get("seen"), h))
    out: dict = {}
    for group in GROUPS:
        sel = [x for x in rows if in_group(x[1], group)]
        if not sel:
            continue
        users = [x[0] for x in sel]
        out[group] = {f"top{k}": accuracy([x[2][k] for x in sel], users, n_boot, seed).as_dict() for k in ks}
    return out
