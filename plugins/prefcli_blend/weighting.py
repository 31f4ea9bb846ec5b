"""The arithmetic of `blend`: standardising, choosing w per person, combining. Pure numpy, no models.

Kept apart from the scorer so that `bench/bench_blend.py` measures exactly
the rule the scorer runs, on component scores it computes cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

#: The weights tried by the leave-one-out. w = 0 is the general scorer alone; at the last, 64, the
#: personal scorer decides and the general one only breaks its near-ties (with 8 the last, a general
#: part that knows nothing kept an eighth of the say: 1.6 points below the toy recipe alone on
#: `opposed`, docs/toy-results.md).
GRID = (0.0, 0.125, 0.25, 0.375, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 8.0, 16.0, 64.0)


def standardize(values: Sequence[float], pool: Sequence[float]) -> np.ndarray:
    """(values − mean(pool)) / std(pool); zeros when the pool cannot give a scale.

    A pool of fewer than two finite values, or of equal values, says nothing about
    how far apart this component places images: the component then adds nothing
    (z = 0) rather than an arbitrary number. Non-finite values stay NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    p = np.asarray(pool, dtype=np.float64)
    p = p[np.isfinite(p)]
    if p.size < 2:
        return np.where(np.isfinite(v), 0.0, np.nan)
    sd = float(p.std())
    if not sd > 1e-12:
        return np.where(np.isfinite(v), 0.0, np.nan)
    return (v - float(p.mean())) / sd


@dataclass(frozen=True)
class Evidence:
    """Why a person's w is what it is (what `rank` shows and the JSON carries)."""

    weight: float  # the w used: shrunk, or the fixed one
    mode: str  # "auto" or "fixed"
    loo_pairs: int  # history pairs the leave-one-out graded (0: none; w is then the population w)
    loo_best: float | None  # the grid w with the most pairs right (ties: the closest to the population w)
    loo_general: float | None  # share of those pairs the general scorer alone ordered right
    loo_personal: float | None  # ... the personal scorer alone (conditioned on the other N−1 pairs)
    loo_blend: float | None  # ... the blend at loo_best
    population_weight: float
    shrinkage: float

    def as_dict(self) -> dict:
        return asdict(self)

    def sentence(self) -> str:
        if self.mode == "fixed":
            return f"w = {self.weight:g} (fixed by -o weight)"
        if not self.loo_pairs:
            return (
                f"w = {self.weight:.3g}: the population w (the history has fewer than 2 pairs, "
                f"so no pair could be graded by a personal scorer that did not see it)"
            )
        return (
            f"w = {self.weight:.3g}: leave-one-out over {self.loo_pairs} history pair(s) — general alone "
            f"{self.loo_general:.0%} right, personal alone {self.loo_personal:.0%}, blend at w = {self.loo_best:g} "
            f"{self.loo_blend:.0%} — shrunk toward the population w {self.population_weight:g} "
            f"with the weight of {self.shrinkage:g} pair(s)"
        )


def _right(d: np.ndarray) -> float:
    """Pairs ordered right: a positive margin counts 1, a tie ½ (the ranking breaks it by path)."""
    d = d[np.isfinite(d)]
    return float((d > 0).sum() + 0.5 * (d == 0).sum())


def _share(w: float) -> float:
    """The personal part's share of the blend, w / (1 + w), in [0, 1)."""
    return float(w) / (1.0 + float(w))


def choose_weight(
    d_general: Sequence[float],
    d_personal: Sequence[float],
    *,
    population_weight: float,
    shrinkage: float,
    grid: Sequence[float] = GRID,
) -> Evidence:
    """w for one person from their leave-one-out pairs.

    `d_general[i]`, `d_personal[i]`: z(liked) − z(disliked) of history pair i,
    the personal one scored by the personal scorer conditioned on the *other*
    pairs. The grid w that orders most pairs right is taken (ties: the one
    closest to the population w), then shrunk in the personal part's share
    a(w) = w / (1 + w): a = (n·a(ŵ) + k·a(w₀)) / (n + k), with n pairs and
    k = `shrinkage`, and w = a / (1 − a).
    """
    grid = list(grid)
    dg = np.asarray(d_general, dtype=np.float64)
    dp = np.asarray(d_personal, dtype=np.float64)
    ok = np.isfinite(dg) & np.isfinite(dp)
    dg, dp = dg[ok], dp[ok]
    n = int(dg.size)
    w0, k = float(population_weight), float(shrinkage)
    if n == 0:
        return Evidence(w0, "auto", 0, None, None, None, None, w0, k)
    right = [_right(dg + w * dp) for w in grid]
    best_right = max(right)
    # Of the w that order most pairs right, the one closest to the population w: a history that
    # cannot tell two w apart keeps the population's (few pairs rarely can).
    best = min((w for w, r in zip(grid, right) if r == best_right), key=lambda w: (abs(_share(w) - _share(w0)), w))
    # Shrink the personal part's share w / (1 + w), which is bounded, rather than w itself: one
    # lucky pair that sends ŵ to the top of the grid must not outweigh the population's w.
    a = (n * _share(best) + k * _share(w0)) / (n + k)
    w = a / (1.0 - a) if a < 1.0 else float(grid[-1])
    return Evidence(float(w), "auto", n, float(best), _right(dg) / n, _right(dp) / n, best_right / n, w0, k)


def fixed(weight: float, population_weight: float, shrinkage: float) -> Evidence:
    return Evidence(float(weight), "fixed", 0, None, None, None, None, float(population_weight), float(shrinkage))


def combine(
    general: Sequence[float],
    personal: Sequence[float],
    weight: float,
    pool_general: Sequence[float] = (),
    pool_personal: Sequence[float] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score, z_general, z_personal) of one ranking's candidates.

    Each component is standardised over the ranking's candidates together with
    its `pool` (the person's history images: the general scorer's scores of
    them, and the personal scorer's leave-one-out scores), so that a ranking of
    two candidates, or of one, still has a scale.
    """
    g = np.asarray(general, dtype=np.float64)
    p = np.asarray(personal, dtype=np.float64)
    zg = standardize(g, np.concatenate([g, np.asarray(pool_general, dtype=np.float64)]))
    zp = standardize(p, np.concatenate([p, np.asarray(pool_personal, dtype=np.float64)]))
    return zg + float(weight) * zp, zg, zp
