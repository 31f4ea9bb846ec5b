"""Each loss term against a hand computation with small numbers."""

from __future__ import annotations

import math

import pytest
import torch

from prefcli.vlm import losses

PLUS, MINUS = 1, 2


def _logits():
    # vocabulary of 4; two pairs
    pos = torch.tensor([[0.0, 2.0, 1.0, -1.0], [0.5, 0.0, 1.5, 0.0]])
    neg = torch.tensor([[0.0, 1.0, 3.0, 0.0], [1.0, 0.5, 0.5, 0.0]])
    return pos, neg


def _ce(row, target):
    return -(row[target] - math.log(sum(math.exp(v) for v in row)))


def _lsig(x):
    return math.log(1.0 / (1.0 + math.exp(-x)))


def test_base_loss_is_full_vocabulary_cross_entropy():
    pos, neg = _logits()
    P, N = pos.tolist(), neg.tolist()
    want = 0.5 * ((_ce(P[0], PLUS) + _ce(P[1], PLUS)) / 2 + (_ce(N[0], MINUS) + _ce(N[1], MINUS)) / 2)
    got = losses.base_loss(pos, neg, PLUS, MINUS)
    assert got.item() == pytest.approx(want, rel=1e-6)
    # the other tokens matter: a two-way softmax over {+,-} would give a different number
    two_way = 0.5 * (sum(-_lsig(r[PLUS] - r[MINUS]) for r in P) / 2 + sum(-_lsig(r[MINUS] - r[PLUS]) for r in N) / 2)
    assert got.item() != pytest.approx(two_way, rel=1e-3)


def test_contrastive_terms_by_hand():
    pos, neg = _logits()
    P, N = pos.tolist(), neg.tolist()
    lp = -(_lsig(P[0][PLUS] - N[0][PLUS]) + _lsig(P[1][PLUS] - N[1][PLUS])) / 2
    lm = -(_lsig(N[0][MINUS] - P[0][MINUS]) + _lsig(N[1][MINUS] - P[1][MINUS])) / 2
    assert losses.plus_contrast(pos[:, PLUS], neg[:, PLUS]).item() == pytest.approx(lp, rel=1e-6)
    assert losses.minus_contrast(neg[:, MINUS], pos[:, MINUS]).item() == pytest.approx(lm, rel=1e-6)
    t = losses.preference_loss(pos, neg, PLUS, MINUS)
    base = losses.base_loss(pos, neg, PLUS, MINUS).item()
    assert t.plus.item() == pytest.approx(lp, rel=1e-6)
    assert t.minus.item() == pytest.approx(lm, rel=1e-6)
    assert t.cp.item() == pytest.approx(lp + lm, rel=1e-6)
    assert t.total.item() == pytest.approx(base + lp + lm, rel=1e-6)


def test_switches_select_the_ablation_rows():
    pos, neg = _logits()
    only_base = losses.preference_loss(pos, neg, PLUS, MINUS, use_cp=False)
    assert only_base.plus is None and only_base.cp is None
    assert only_base.total.item() == pytest.approx(losses.base_loss(pos, neg, PLUS, MINUS).item())
    only_cp = losses.preference_loss(pos, neg, PLUS, MINUS, use_base=False)
    assert only_cp.base is None
    assert only_cp.total.item() == pytest.approx(only_cp.cp.item())
    assert set(only_cp.as_floats()) == {"loss", "loss_plus", "loss_minus", "loss_cp"}
    with pytest.raises(ValueError):
        losses.preference_loss(pos, neg, PLUS, MINUS, use_base=False, use_cp=False)


def test_contrast_gradient_direction_and_q():
    pos, neg = _logits()
    pos.requires_grad_(True)
    losses.preference_loss(pos, neg, PLUS, MINUS, use_base=False).total.backward()
    assert (pos.grad[:, PLUS] < 0).all()  # descending raises M+ of the liked target
    assert (pos.grad[:, MINUS] > 0).all()  # and lowers its M-
    q = losses.q_score(torch.tensor([2.0]), torch.tensor([0.0]))
    assert q.item() == pytest.approx(math.exp(2) / (math.exp(2) + 1))
