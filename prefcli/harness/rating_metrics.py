"""Metrics of rating tasks ("predict this user's rating"). The harness owns these; scorers never do.

A rating task holds one user's rated target images; a scorer gives each a
score. Per task (then averaged over a user's tasks, then over users, so
every person weighs the same):

- Spearman ρ and Kendall τ-b between scores and ratings;
- pairwise accuracy over the user's pairs with different ratings: a hit when
  the higher-rated image scores strictly higher (a tied score is a miss, as
  in the top-k metrics);
- MAE after a per-user affine calibration: ratings ≈ a·score + b fitted by
  least squares on that user's targets, with a ≥ 0 (a fit that would
  reverse the scores falls back to the user's mean rating), so it measures
  how well an order-keeping linear map of the scores reproduces the ratings
  (a scorer's own scale is arbitrary), not absolute calibration.

Scores are negated first for scorers where lower is better. A NaN score
counts as the worst score. A task whose ratings are all equal has no
ordering to predict and is left out (counted); constant scores against
varying ratings give ρ = τ = 0. Standard errors: bootstrap over users, as
in prefcli.harness.metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from prefcli.harness.metrics import DEFAULT_BOOTSTRAP, DEFAULT_SEED, GROUPS, bootstrap_se, in_group

METRICS = ("spearman", "kendall", "pairwise_accuracy", "mae_calibrated")


def _clean(scores: Sequence[float], higher_is_better: bool) -> np.ndarray:
    s = np.asarray([float(x) for x in scores], dtype=np.float64)
    if not higher_is_better:
        s = -s
    if np.isnan(s).any():
        finite = s[~np.isnan(s)]
        s[np.isnan(s)] = (finite.min() - 1.0) if finite.size else 0.0
    return s


def pairwise_accuracy(scores: np.ndarray, ratings: np.ndarray) -> tuple[float, int]:
    """Share of the pairs with different ratings that the scores order the same way; and how many pairs."""
    ds = scores[:, None] - scores[None, :]
    dr = ratings[:, None] - ratings[None, :]
    upper = np.triu(np.ones_like(dr, dtype=bool), k=1) & (dr != 0)
    n = int(upper.sum())
    if n == 0:
        return math.nan, 0
    return float(((ds * dr) > 0)[upper].mean()), n


def calibrated_mae(scores: np.ndarray, ratings: np.ndarray) -> float:
    """Mean |rating − (a·score + b)| with (a, b) the least-squares fit on these targets."""
    pred = np.full_like(ratings, ratings.mean())
    if np.ptp(scores) > 0:
        a, b = np.polyfit(scores, ratings, 1)
        if a > 0:  # the map may rescale the scores, never reverse their order
            pred = a * scores + b
    return float(np.abs(ratings - pred).mean())


def task_metrics(scores: Sequence[float], ratings: Sequence[float], higher_is_better: bool = True) -> dict | None:
    """The four metrics of one task, or None when its ratings are all equal."""
    from scipy.stats import kendalltau, spearmanr

    r = np.asarray([float(x) for x in ratings], dtype=np.float64)
    s = _clean(scores, higher_is_better)
    if r.size < 2 or np.ptp(r) == 0:
        return None
    if np.ptp(s) == 0:
        rho = tau = 0.0
    else:
        rho = float(spearmanr(s, r).statistic)
        tau = float(kendalltau(s, r).statistic)
    acc, n_pairs = pairwise_accuracy(s, r)
    return {
        "spearman": rho,
        "kendall": tau,
        "pairwise_accuracy": acc,
        "mae_calibrated": calibrated_mae(s, r),
        "n_pairs": n_pairs,
        "n_items": int(r.size),
    }


def summarize(
    records: Sequence[dict], higher_is_better: bool = True, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = DEFAULT_SEED
) -> dict:
    """{group: {metric: {"value", "se", "n_tasks", "n_users", ...}}} for "all", "seen" and "unseen".

    Each record needs "scores", "ratings", "user_id" and "seen".
    """
    per_task = []
    skipped = 0
    for rec in records:
        m = task_metrics(rec["scores"], rec["ratings"], higher_is_better)
        if m is None:
            skipped += 1
            continue
        per_task.append((str(rec.get("user_id")), rec.get("seen"), m))
    out: dict = {}
    for group in GROUPS:
        sel = [x for x in per_task if in_group(x[1], group)]
        if not sel:
            continue
        users = sorted({u for u, _, _ in sel})
        g: dict = {}
        for key in METRICS:
            per_user = []
            for u in users:
                vals = [m[key] for uu, _, m in sel if uu == u and not math.isnan(m[key])]
                if vals:
                    per_user.append((u, float(np.mean(vals))))
            if not per_user:
                g[key] = {"value": math.nan, "se": math.nan, "n_tasks": len(sel), "n_users": 0}
                continue
            v = [x[1] for x in per_user]
            g[key] = {
                "value": float(np.mean(v)),
                "se": bootstrap_se(v, [x[0] for x in per_user], n_boot, seed),
                "n_tasks": len(sel),
                "n_users": len(per_user),
            }
        g["pairwise_accuracy"]["n_pairs"] = int(sum(m["n_pairs"] for _, _, m in sel))
        g["spearman"]["n_items"] = int(sum(m["n_items"] for _, _, m in sel))
        g["spearman"]["tasks_without_rating_spread"] = skipped if group == "all" else None
        out[group] = g
    return out
