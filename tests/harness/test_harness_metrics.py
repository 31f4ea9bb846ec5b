"""Metrics computed by hand: ranks, ties, top-k for 1-vs-3, bootstrap standard errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prefcli.harness import metrics


def test_liked_rank_and_hits_by_hand():
    assert metrics.liked_rank([0.9, 0.1], 0) == 1
    assert metrics.liked_rank([0.1, 0.9], 0) == 2
    # 1-vs-3: liked (index 2) is beaten by one candidate -> rank 2.
    assert metrics.hits_at([0.5, 0.9, 0.7, 0.1], 2, (1, 2, 3)) == {1: False, 2: True, 3: True}
    assert metrics.hits_at([0.95, 0.9, 0.7, 0.8], 2, (1, 2, 3)) == {1: False, 2: False, 3: False}
    # Lower-is-better scorers flip the order.
    assert metrics.liked_rank([3.0, 1.0], 1, higher_is_better=False) == 1


def test_ties_count_against_the_liked_image():
    # A tie for first place is a top-1 miss; with one tie partner it is a top-2 hit.
    assert metrics.hits_at([0.5, 0.5], 0, (1,)) == {1: False}
    assert metrics.hits_at([0.5, 0.5], 1, (1,)) == {1: False}
    assert metrics.hits_at([0.7, 0.7, 0.1, 0.7], 0, (1, 2, 3)) == {1: False, 2: False, 3: True}
    # All equal (a constant scorer) scores zero at top-1, whatever the liked index.
    recs = [{"scores": [1.0, 1.0], "liked_index": i % 2, "user_id": f"u{i}", "seen": None} for i in range(10)]
    assert metrics.summarize(recs, n_boot=50)["all"]["top1"]["value"] == 0.0


def test_nan_scores():
    assert metrics.liked_rank([math.nan, 0.1], 0) == 2  # the liked one is NaN: miss
    assert metrics.liked_rank([0.1, math.nan], 0) == 1  # a NaN rival beats nothing


def test_ks_and_random():
    assert metrics.ks_for(2) == (1,)
    assert metrics.ks_for(4) == (1, 2, 3)
    assert [metrics.random_expected(4, k) for k in (1, 2, 3)] == [0.25, 0.5, 0.75]


def test_bootstrap_is_seeded_and_about_right():
    rng = np.random.default_rng(1)
    n = 400
    hits = rng.random(n) < 0.7
    users = [f"u{i}" for i in range(n)]  # one task per user: the binomial SE applies
    a = metrics.bootstrap_se(hits, users, n_boot=2000, seed=3)
    b = metrics.bootstrap_se(hits, users, n_boot=2000, seed=3)
    c = metrics.bootstrap_se(hits, users, n_boot=2000, seed=4)
    assert a == b
    assert a != c
    p = hits.mean()
    assert a == pytest.approx(math.sqrt(p * (1 - p) / n), rel=0.1)


def test_bootstrap_resamples_users_not_tasks():
    # Each user is all-hit or all-miss with 10 tasks: 20 independent units, not 200.
    users = [f"u{i // 10}" for i in range(200)]
    hits = [(i // 10) % 2 == 0 for i in range(200)]
    se = metrics.bootstrap_se(hits, users, n_boot=2000, seed=0)
    assert se == pytest.approx(math.sqrt(0.25 / 20), rel=0.15)
    assert se > 2 * math.sqrt(0.25 / 200)


def test_summarize_groups_seen_unseen():
    recs = [
        {"scores": [1, 0], "liked_index": 0, "user_id": "a", "seen": True},
        {"scores": [0, 1], "liked_index": 0, "user_id": "a", "seen": True},
        {"scores": [1, 0], "liked_index": 0, "user_id": "b", "seen": False},
        {"scores": [1, 0], "liked_index": 0, "user_id": "c", "seen": False},
    ]
    s = metrics.summarize(recs, n_boot=100)
    assert s["all"]["top1"]["value"] == 0.75
    assert s["seen"]["top1"] | {"se": None} == {"value": 0.5, "se": None, "n_tasks": 2, "n_users": 1}
    assert math.isnan(s["seen"]["top1"]["se"])  # one user: no spread to estimate
    assert s["unseen"]["top1"]["value"] == 1.0 and s["unseen"]["top1"]["n_users"] == 2
    four = [{"scores": [0.1, 0.9, 0.5, 0.2], "liked_index": 2, "user_id": "a", "seen": None}]
    s4 = metrics.summarize(four, n_boot=10)
    assert set(s4) == {"all"}
    assert [s4["all"][f"top{k}"]["value"] for k in (1, 2, 3)] == [0.0, 1.0, 1.0]
