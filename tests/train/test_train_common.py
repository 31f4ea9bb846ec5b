"""The two trainers share the harness's top-1 rule and one Accelerator set-up (prefcli.train.common)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch

from prefcli.harness import metrics
from prefcli.train import common, loop, pickscore_star
from prefcli.train.config import RunConfig

NAN = math.nan
# (scores, liked index): a clean win, a clean loss, a tie for first, a tie below a winner,
# a NaN beside the liked image (never beats it) and a NaN liked score (always a miss).
CASES = [
    ([0.7, 0.3], 0),
    ([0.3, 0.7], 0),
    ([0.5, 0.5], 0),
    ([0.9, 0.2, 0.2], 0),
    ([0.9, 0.9, 0.1], 1),
    ([0.6, NAN], 0),
    ([0.6, NAN, 0.2], 0),
    ([NAN, 0.1], 0),
]


def test_the_harness_rule_on_the_cases():
    assert [metrics.top1_hit(s, i) for s, i in CASES] == [True, False, False, True, False, True, True, False]


def test_the_preference_token_loop_counts_hits_as_the_harness_does():
    assert [loop.top1_correct(s, i) for s, i in CASES] == [metrics.top1_hit(s, i) for s, i in CASES]


def test_pickscore_star_validation_counts_hits_as_the_harness_does(monkeypatch):
    # Scores reach val_accuracy as exp(logit_scale) * <text, image>: logit_scale 0, text 1, image = the score.
    flat = [x for s, _ in CASES for x in s]
    monkeypatch.setattr(pickscore_star, "_tokens", lambda tokenizer, prompts: torch.zeros(len(prompts), 1))
    monkeypatch.setattr(
        pickscore_star, "_features", lambda model, ids, pix: (torch.ones(len(flat), 1), torch.tensor(flat).view(-1, 1))
    )
    model = torch.nn.Linear(1, 1)
    model.logit_scale = torch.nn.Parameter(torch.zeros(()))
    bundle = SimpleNamespace(model=model, tokenizer=None)
    store = SimpleNamespace(get=lambda ids: torch.zeros(len(ids), 1))
    for only in range(len(CASES)):  # one task at a time: each case's hit, not just their sum
        scores, liked = CASES[only]
        flat[:] = scores
        task = SimpleNamespace(
            candidates=[f"c{j}" for j in range(len(scores))], prompts=["p"] * len(scores), liked_index=liked
        )
        assert pickscore_star.val_accuracy(bundle, [task], store, "cpu") == float(metrics.top1_hit(scores, liked)), (
            CASES[only]
        )


def test_mixed_precision_is_off_on_the_cpu_for_both_trainers(tmp_path):
    # The shipped full-size configs say bf16; the same config on the CPU runs in float32, whichever trainer runs it.
    run = RunConfig(mixed_precision="bf16", device="cpu")
    assert common.mixed_precision_on(run, cpu=True) == "no"
    assert common.mixed_precision_on(run, cpu=False) == "bf16"
    assert common.make_accelerator(run, tmp_path, trackers=False).mixed_precision == "no"
