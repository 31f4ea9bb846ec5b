"""Pairwise scorers: a judge that says which of two images a person prefers.

A pointwise scorer gives each candidate a number; a pairwise one (a VLM judge
answering "Image A" or "Image B") only compares two. The contract is
`compare(a, b, state) -> Preference`; the harness asks it once per pair of a
1-vs-1 task and once per unordered pair of a 1-vs-n task (a round-robin), and a
candidate's score is its number of wins. So the usual top-k metrics apply
unchanged, with their pessimistic tie rule: a comparison with no answer gives
no win to either side, so a 1-vs-1 task the judge did not answer is a miss.

Only the first order (candidate i as A, candidate j as B for i < j) is asked:
that is the protocol PreferThinker evaluates (its `imageA`/`imageB` as stored).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

KIND_POINTWISE = "pointwise"
KIND_PAIRWISE = "pairwise"
KINDS = (KIND_POINTWISE, KIND_PAIRWISE)


@dataclass(frozen=True)
class Preference:
    """One judgement between image A (the first) and image B (the second).

    `winner` is 0 (A), 1 (B), 0.5 (the judge says they are equal) or None (no
    usable answer). `scores` are the judge's own numbers for A and B when it
    gives any (PreferThinker's two `total_score`s); `details` holds what the
    judge said (raw text, parsed profile, why there was no answer).
    """

    winner: float | None
    scores: tuple[float | None, float | None] = (None, None)
    details: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.winner not in (None, 0, 1, 0.5):
            raise ValueError(
                f"Preference.winner must be 0 (A), 1 (B), 0.5 (equal) or None (no answer), got {self.winner!r}"
            )

    @property
    def answered(self) -> bool:
        return self.winner is not None

    @property
    def value(self) -> float:
        """How much A won: 1.0 (A), 0.0 (B), 0.5 (equal), NaN (no answer). What the cache stores."""
        return math.nan if self.winner is None else 1.0 - float(self.winner)

    @classmethod
    def from_value(cls, value: float | None, **details: Any) -> Preference:
        if value is None or math.isnan(value):
            return cls(None, details=details)
        return cls({1.0: 0, 0.0: 1, 0.5: 0.5}[float(value)], details=details)

    def as_dict(self) -> dict:
        return {
            "winner": {0: "A", 1: "B", 0.5: "equal", None: None}[self.winner],
            "scores": list(self.scores),
            **self.details,
        }


def round_robin(n: int) -> list[tuple[int, int]]:
    """Every unordered pair (i, j), i < j, of n candidates: one comparison for 1-vs-1, six for 1-vs-3."""
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def wins(n: int, outcomes: Sequence[tuple[int, int, float]]) -> list[float]:
    """Round-robin wins per candidate from (i, j, value) outcomes, value = how much i won (NaN: nobody)."""
    out = [0.0] * n
    for i, j, v in outcomes:
        if v is None or math.isnan(v):
            continue
        out[i] += v
        out[j] += 1.0 - v
    return out


def compare_batch(scorer: Any, pairs: Sequence[tuple[Any, Any]], state: Any) -> list[Preference]:
    """The scorer's `compare_batch` when it has one, else one `compare` per pair; the count is checked."""
    fn = getattr(scorer, "compare_batch", None)
    got = list(fn(pairs, state)) if fn is not None else [scorer.compare(a, b, state) for a, b in pairs]
    if len(got) != len(pairs):
        name = getattr(getattr(scorer, "spec", None), "name", type(scorer).__name__)
        raise RuntimeError(f"scorer {name!r} returned {len(got)} preferences for {len(pairs)} pairs")
    return got


def rank_by_wins(
    scorer: Any,
    candidates: Sequence[Any],
    state: Any,
    *,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[float], list[dict]]:
    """Round-robin a list of candidates (what `rank` does with a pairwise scorer).

    Returns the wins per candidate and one record per comparison. N candidates
    cost N(N-1)/2 comparisons.
    """
    pairs = round_robin(len(candidates))
    outcomes: list[tuple[int, int, float]] = []
    records: list[dict] = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        prefs = compare_batch(scorer, [(candidates[i], candidates[j]) for i, j in chunk], state)
        for (i, j), p in zip(chunk, prefs):
            outcomes.append((i, j, p.value))
            records.append({"a": i, "b": j, **p.as_dict()})
        if progress is not None:
            progress(len(outcomes), len(pairs))
    return wins(len(candidates), outcomes), records
