"""The `preftoken` scorer: cached prefix == full computation, differentiable, weights, history checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from prefcli.errors import HistoryError, WeightsError
from prefcli.plugins import get_scorer_spec, load_scorer
from prefcli.types import Candidate, HistoryPair, UserHistory
from prefcli.vlm import scoring
from prefcli.vlm.template import eval_history_items


def _img(seed: int, size: int = 40) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(1, 255, (size, size, 3), dtype=np.uint8))


def _history(n: int, prompts: bool = True) -> UserHistory:
    return UserHistory(
        tuple(
            HistoryPair(
                liked=Candidate.from_image(_img(2 * i)),
                disliked=Candidate.from_image(_img(2 * i + 1)),
                prompt=f"prompt number {i}" if prompts else None,
            )
            for i in range(n)
        ),
        user_id="u",
    )


PROMPTS = [
    "a red circle",
    "blue",
    "a much longer prompt about a castle at night with many towers",
    "x",
    "a cat",
    "a dog",
    "sea",
]


def _cands(n: int = 7) -> list[Candidate]:
    return [Candidate.from_image(_img(100 + i), prompt=PROMPTS[i % len(PROMPTS)]) for i in range(n)]


def _sharpen(vlm) -> None:
    """Random init (std 0.02) makes every score ~0.5; larger weights make differences visible."""
    with torch.no_grad():
        for p in vlm.core.parameters():
            if p.ndim >= 2:
                p.mul_(4)


@pytest.fixture(scope="module")
def scorer():
    s = load_scorer("preftoken", weights="tiny:3", batch_size=3)
    _sharpen(s.vlm)
    return s


def test_registered_with_history_and_prompt_inputs():
    spec = get_scorer_spec("preftoken")
    assert spec.needs == frozenset({"image", "prompt", "history"}) and spec.differentiable and spec.uses_history


def test_cached_scores_equal_the_uncached_full_sequence_through_the_scorer(scorer):
    h = _history(8)
    cands = _cands(7)
    state = scorer.condition(h)
    assert state.n_pairs == 8 and state.length == 10 + len(scorer.vlm.encoder.encode_prefix(eval_history_items(h)).ids)
    got = scorer.score(cands, state)  # batches of 3 with padded prompts of different lengths
    with torch.no_grad():
        want = scoring.score_uncached(scorer.vlm, eval_history_items(h), cands, [c.prompt for c in cands], batch_size=7)
    want_q = scoring.q_scores(want)
    np.testing.assert_allclose(got, want_q, rtol=1e-4, atol=0)
    assert np.std(got) > 1e-3  # the candidates are told apart, so equality is not trivial
    # the same state again, candidates in another order and batch: same numbers
    again = scorer.score(cands[::-1], state)
    np.testing.assert_allclose(again[::-1], got, rtol=1e-5)
    # the history matters: another history gives other scores
    other = scorer.score(cands, scorer.condition(UserHistory(h.pairs[::-1])))
    assert not np.allclose(other, got, rtol=1e-4)


def test_prompt_changes_the_score_and_missing_prompts_are_noted(scorer):
    h = _history(8)
    state = scorer.condition(h)
    a = scorer.score([Candidate.from_image(_img(7), prompt="a red circle")], state)
    b = scorer.score([Candidate.from_image(_img(7), prompt="a castle at night")], state)
    assert a != b
    with pytest.warns(UserWarning, match="empty prompt"):
        none = scorer.score([Candidate.from_image(_img(7))], state)
    empty = scorer.score([Candidate.from_image(_img(7), prompt="")], state)
    assert none == empty


def test_reward_is_differentiable_and_equals_score(scorer):
    size = scorer.vlm.core.config.vision_config.image_size
    arr = np.random.default_rng(5).integers(1, 255, (2, size, size, 3), dtype=np.uint8)
    state = scorer.condition(_history(8))
    pixels = (torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255).requires_grad_(True)
    r = scorer.reward(pixels, ["a cat", "a dog"], state)
    assert r.shape == (2,) and r.requires_grad
    r.sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0
    want = scorer.score(
        [
            Candidate.from_image(Image.fromarray(arr[0]), prompt="a cat"),
            Candidate.from_image(Image.fromarray(arr[1]), prompt="a dog"),
        ],
        state,
    )
    np.testing.assert_allclose(r.detach().numpy(), want, rtol=1e-4)
    assert all(not p.requires_grad for p in scorer.vlm.parameters())  # gradients reach pixels only


def test_history_checks_say_what_is_required_and_found(scorer):
    with pytest.raises(HistoryError, match="found none"):
        scorer.condition(None)
    with pytest.raises(HistoryError, match="found none"):
        scorer.condition(UserHistory(()))
    bad = (HistoryPair(liked=Candidate.from_image(_img(1)), disliked=None),)
    with pytest.raises(HistoryError, match="pair 0 lacks a liked or a disliked image"):
        scorer.condition(UserHistory(bad))
    with pytest.raises(HistoryError, match="needs the state returned by condition"):
        scorer.score(_cands(1), None)
    fresh = load_scorer("preftoken", weights="tiny")
    with pytest.warns(UserWarning, match=r"has 3 liked/disliked pair\(s\) but the model was trained with 8"):
        st = fresh.condition(_history(3))
    assert len(fresh.score(_cands(2), st)) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fresh.condition(_history(8))  # the trained length: no note


def test_checkpoint_folders_run_dirs_and_shipped_names(scorer, tmp_path, monkeypatch):
    from prefcli.vlm.checkpoint import save_vlm

    save_vlm(scorer.vlm, tmp_path / "run" / "checkpoints" / "step-00000010" / "model", metadata={"n_ref": 4})
    save_vlm(scorer.vlm, tmp_path / "run" / "checkpoints" / "step-00000020" / "model", metadata={"n_ref": 4})
    h, cands = _history(4), _cands(3)
    want = scorer.score(cands, scorer.condition(h))

    s = load_scorer("preftoken", weights=str(tmp_path / "run"))
    assert s.model_dir == tmp_path / "run" / "checkpoints" / "step-00000020" / "model"  # the newest checkpoint
    assert s.n_ref == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 4 pairs is this model's N_ref: no note
        got = s.score(cands, s.condition(h))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # weights_id is stable across loads and changes with the weights
    s2 = load_scorer("preftoken", weights=str(tmp_path / "run" / "checkpoints" / "step-00000020" / "model"))
    assert s2.weights_id.split("#")[1] == s.weights_id.split("#")[1]
    with torch.no_grad():
        scorer.vlm.pref_tokens.weight.add_(1.0)
    try:
        save_vlm(scorer.vlm, tmp_path / "other")
    finally:
        with torch.no_grad():
            scorer.vlm.pref_tokens.weight.sub_(1.0)
    assert (
        load_scorer("preftoken", weights=str(tmp_path / "other")).weights_id.split("#")[1] != s.weights_id.split("#")[1]
    )

    # a shipped tiny model is found by name (the one lookup: prefcli.vlm.folders)
    from prefcli.vlm import folders

    monkeypatch.setattr(folders, "SHIPPED_ROOT", tmp_path / "shipped")
    save_vlm(scorer.vlm, tmp_path / "shipped" / "tiny-test-model")
    named = load_scorer("preftoken", weights="tiny-test-model")
    assert named.weights_id.startswith("pretrained:tiny-test-model#")
    with pytest.raises(WeightsError, match="tiny-test-model"):
        load_scorer("preftoken", weights="no-such-model")


def test_weights_are_required_and_folders_checked(tmp_path):
    with pytest.raises(WeightsError, match="needs --weights"):
        load_scorer("preftoken")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="not a prefcli model folder"):
        load_scorer("preftoken", weights=str(tmp_path / "empty"))


def test_rank_uses_the_scorer_with_folder_histories(tmp_path):
    from prefcli.harness.handle import ScorerHandle
    from prefcli.ranking import rank_folder

    for sub, n, off in (("liked", 3, 0), ("disliked", 3, 10), ("cands", 4, 20)):
        (tmp_path / sub).mkdir()
        for i in range(n):
            _img(off + i).save(tmp_path / sub / f"{i}.png")
    with pytest.warns(UserWarning, match="trained with 8"):
        res = rank_folder(
            tmp_path / "cands",
            likes=tmp_path / "liked",
            dislikes=tmp_path / "disliked",
            scorer=ScorerHandle("preftoken", "tiny"),
            prompt="a red circle",
        )
    assert len(res.ranked) == 4 and res.history_pairs == 3
    assert [r.rank for r in res.ranked] == [1, 2, 3, 4]


def test_plugin_registration_imports_no_torch():
    code = (
        "import sys, json; import prefcli_preftoken, prefcli_viper; "
        "print(json.dumps([m for m in ('torch', 'transformers', 'peft') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
