"""One order from several scorers' scores of the same images: `rank --scorer a --scorer b`.

Scorers speak different units (PickScore ≈ 20, HPSv2 ≈ 0.3, a probe's
probability in [0, 1]), so their raw scores are never averaged:

- ``mean-rank`` (the default): each scorer ranks the images (1 = best, a tie
  shares the mean of its ranks), the combination is the weighted mean of those
  ranks; lower is better. Robust to a scorer's outliers and scale.
- ``z-mean``: each scorer's scores become z-scores over the images (sign
  flipped for a lower-is-better scorer), the combination is their weighted
  mean; higher is better. Keeps how far apart the images are.

Weights are `--scorer NAME=WEIGHT` (the spelling of `generate --reward`, read
by prefcli.generate.rewards.parse_rewards); a bare name weighs 1. A NaN score
(a scorer that could not score an image) is missing: that image's combination
is the weighted mean over the scorers that did score it. Import-light.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from prefcli.errors import ConfigError

METHODS = ("mean-rank", "z-mean")
DEFAULT_METHOD = "mean-rank"


def _finite(v: float | None) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def ranks(scores: Sequence[float], higher_is_better: bool = True) -> list[float]:
    """1-based ranks, best first; tied scores share the mean of their ranks; NaN gets NaN."""
    idx = [i for i, s in enumerate(scores) if _finite(s)]
    idx.sort(key=lambda i: -scores[i] if higher_is_better else scores[i])
    out = [math.nan] * len(scores)
    pos = 0
    while pos < len(idx):
        end = pos
        while end + 1 < len(idx) and scores[idx[end + 1]] == scores[idx[pos]]:
            end += 1
        shared = (pos + end) / 2 + 1
        for k in range(pos, end + 1):
            out[idx[k]] = shared
        pos = end + 1
    return out


def zscores(scores: Sequence[float], higher_is_better: bool = True) -> list[float]:
    """(s − mean) / std over the finite scores (population std), negated when lower is better; all equal → 0."""
    vals = [s for s in scores if _finite(s)]
    if not vals:
        return [math.nan] * len(scores)
    mean = sum(vals) / len(vals)
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))
    sign = 1.0 if higher_is_better else -1.0
    return [math.nan if not _finite(s) else (0.0 if std == 0 else sign * (s - mean) / std) for s in scores]


def higher_is_better(method: str) -> bool:
    """Which way the combination orders: mean ranks ascending, mean z-scores descending."""
    return check_method(method) == "z-mean"


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ConfigError(f"--combine {method}: choose from {', '.join(METHODS)}")
    return method


def combine(
    scores: Mapping[str, Sequence[float]],
    *,
    method: str = DEFAULT_METHOD,
    weights: Mapping[str, float] | None = None,
    higher: Mapping[str, bool] | None = None,
) -> tuple[list[float], dict[str, list[float]]]:
    """Each image's combined score, and each scorer's per-image ranks (for the table).

    `scores` maps a scorer to one score per image (the same images in the same
    order for every scorer); `higher` says per scorer whether higher is better
    (default True); `weights` per scorer (default 1; their sum must not be 0).
    """
    check_method(method)
    names = list(scores)
    if not names:
        raise ConfigError("no scorer to combine")
    n = {len(v) for v in scores.values()}
    if len(n) != 1:
        raise ValueError(f"every scorer must score the same images: got {sorted(n)} scores")
    w = {name: float((weights or {}).get(name, 1.0)) for name in names}
    if sum(abs(v) for v in w.values()) == 0:
        raise ConfigError("--scorer weights: at least one weight must not be 0")
    hib = {name: (higher or {}).get(name, True) for name in names}
    per_ranks = {name: ranks(scores[name], hib[name]) for name in names}
    parts = per_ranks if method == "mean-rank" else {name: zscores(scores[name], hib[name]) for name in names}
    combined = []
    for i in range(n.pop()):
        have = [(w[name], parts[name][i]) for name in names if _finite(parts[name][i]) and w[name] != 0]
        total = sum(abs(wi) for wi, _ in have)
        combined.append(math.nan if not have or total == 0 else sum(wi * v for wi, v in have) / total)
    return combined, per_ranks
