"""Scoring many histories at once (`score_histories`, `scoring.score_many`) gives the per-history numbers.

An evaluation has one short history per task; the VLM scorers batch across
histories (each distinct image through the vision tower once, padded prefix
passes, candidate rows each reading their own history's cache). Every number
must equal `score(candidates, condition(history))`, history by history.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from prefcli.harness.runner import run_scorer
from prefcli.plugins import load_scorer
from prefcli.train import pretrained
from prefcli.types import Candidate, HistoryPair, RankTask, UserHistory

TOL = 1e-5  # on Q in [0, 1], fp32

_POOL: dict[int, Candidate] = {}


def _img(seed: int) -> Candidate:
    """One of a small pool of images, so that histories and candidates share images (the feature cache is used)."""
    if seed not in _POOL:
        px = np.random.default_rng(seed).integers(1, 255, (40, 40, 3), dtype=np.uint8)  # never all-black
        _POOL[seed] = Candidate.from_image(Image.fromarray(px), prompt=f"prompt {seed % 7}" + " long" * (seed % 5))
    return _POOL[seed]


def _jobs(n: int = 11) -> list[tuple[UserHistory, list[Candidate]]]:
    """Histories of 1 to 8 pairs (prefixes of different lengths: padding), 0 to 4 candidates each, prompts of any length."""
    rng = np.random.default_rng(0)
    jobs = []
    for j in range(n):
        ids = rng.choice(40, size=2 * (1 + j % 8) + 4, replace=False)
        pairs = tuple(
            HistoryPair(
                liked=_img(int(ids[2 * i])),
                disliked=_img(int(ids[2 * i + 1])),
                prompt="p" + " word" * int(ids[2 * i] % 6),
            )
            for i in range(1 + j % 8)
        )
        cands = [_img(int(i)) for i in ids[2 * len(pairs) :][: j % 5]]
        jobs.append((UserHistory(pairs, user_id=f"u{j}"), cands))
    return jobs


def _sharpen(vlm, by: float) -> None:
    """Random init makes every score ~0.5; larger weights make the numbers differ between candidates."""
    with torch.no_grad():
        for p in vlm.core.parameters():
            if p.ndim >= 2:
                p.mul_(by)


def _scorer(name: str, weights: str, **kw):
    if weights.startswith("tiny-") and weights not in pretrained.names():
        pytest.skip(f"{weights} is not shipped")
    s = load_scorer(name, weights=weights, batch_size=3, **kw)  # 3: histories and rows split across passes
    if weights.startswith("tiny:"):
        _sharpen(s.vlm, 3.0)
    return s


CASES = [
    ("preftoken", "tiny:3", {}),  # the paper's template with prompts, 10 preference tokens
    ("preftoken", "tiny-opposed-cp", {}),  # compact template, a trained history model
    ("preftoken", "tiny-opposed-tokens", {}),  # compact + preference tokens
    ("preftoken", "tiny-opposed-population", {}),  # a population model: scored without the history
    ("viper", "tiny:2", {}),  # ViPer's template
]


@pytest.mark.parametrize("name,weights,kw", CASES, ids=[f"{n}-{w}" for n, w, _ in CASES])
def test_score_histories_equals_condition_and_score_per_history(name, weights, kw):
    s = _scorer(name, weights, **kw)
    jobs = _jobs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short histories are noted; not the point here
        got = s.score_histories(jobs)
        want = [s.score(c, s.condition(h)) if c else [] for h, c in jobs]
    assert [len(g) for g in got] == [len(c) for _, c in jobs]
    flat_got = np.array([x for g in got for x in g])
    flat_want = np.array([x for w in want for x in w])
    np.testing.assert_allclose(flat_got, flat_want, rtol=0, atol=TOL)
    assert np.std(flat_want) > 1e-3  # the candidates are told apart, so equality is not trivial
    # Each distinct image went through the vision tower once: the candidates' and, where there are candidates
    # to score, the history's (a population model reads no history images).
    used = {x.image_id for _, c in jobs for x in c}
    if s.reads_history:
        used |= {im.image_id for h, c in jobs if c for im in h.images()}
    assert s.features.encoded == len(used) < sum(len(c) + (2 * len(h) if s.reads_history else 0) for h, c in jobs)
    again = s.score_histories(jobs[::-1])
    assert s.features.encoded == len(used)  # all from the cache the second time
    np.testing.assert_allclose([x for g in again[::-1] for x in g], flat_got, rtol=0, atol=TOL)


def test_the_history_matters_in_the_batched_path():
    s = _scorer("preftoken", "tiny-opposed-cp")
    h, cands = _jobs()[7]
    other = UserHistory(tuple(HistoryPair(p.disliked, p.liked, p.prompt) for p in h.pairs))  # labels flipped
    a, b = s.score_histories([(h, cands), (other, cands)])
    # A path that dropped the history would give equal scores (to ~1e-7); these random-noise
    # images are far from the toy world, so the shipped model moves them by a few hundredths.
    assert np.max(np.abs(np.array(a) - np.array(b))) > 0.01


def test_bad_histories_fail_in_the_batched_path_as_in_condition():
    from prefcli.errors import HistoryError

    s = _scorer("preftoken", "tiny:3")
    with pytest.raises(HistoryError, match="needs a history"):
        s.score_histories([(UserHistory(()), [_img(1)])])


def test_the_harness_scores_an_evaluation_batched_with_the_per_history_numbers():
    s = _scorer("preftoken", "tiny:3")
    tasks = []
    for j, (h, cands) in enumerate(_jobs(14)):
        if len(cands) >= 2:
            tasks.append(RankTask(f"t{j}", cands, 0, history=h, user_id=h.user_id, protocol="1v1", n_ref=len(h)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast, fs = run_scorer(s, tasks, cache=None, batch_size=6)
        slow, ss = run_scorer(s, tasks, cache=None, batch_size=6, batch_histories=False)
    assert fs.score_calls < ss.score_calls and fs.conditioned == ss.conditioned == len(tasks)
    np.testing.assert_allclose(
        [x for r in fast for x in r["scores"]], [x for r in slow for x in r["scores"]], rtol=0, atol=TOL
    )
    assert [r["task_id"] for r in fast] == [t.task_id for t in tasks]
