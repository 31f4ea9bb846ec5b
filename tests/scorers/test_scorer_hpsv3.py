"""`hpsv3`: the tiny model end to end, the prompt strings, the pixels, the reward.

Upstream is the hpsv3 1.0.0 wheel (`pip download hpsv3==1.0.0 --no-deps`);
file:line references below are into that wheel. The score-for-score parity
with its `HPSv3RewardInferencer` is tests/scorers/test_scorer_hpsv3_parity.py.
"""

from __future__ import annotations

import hashlib
import math

import pytest

from prefcli_hpsv3 import prompt as P
from reference import parity_images as PI

# hpsv3/dataset/data_collator_qwen.py in the 1.0.0 wheel: (characters, sha256) of each string, measured on the file.
UPSTREAM_STRINGS = {
    "INSTRUCTION": (
        P.INSTRUCTION,
        2523,
        "0393599dad45a971903d1d62a3acf9bad3ccccdafa7f40f680523419e1f68b7a",
    ),  # lines 11-32
    "prompt_with_special_token": (
        P.REWARD_SUFFIX,
        67,
        "2471faca094ae5bd6fe17b71dce20c3d7583625545e235889f7e74e7eeb69d0a",
    ),  # lines 38-42
    "prompt_without_special_token": (
        P.PLAIN_SUFFIX,
        52,
        "a6191773af69e178467fab43e6890010d40b9a12638b554d734b73f54d3ea119",
    ),  # 44-46
}


@pytest.mark.parametrize("name", sorted(UPSTREAM_STRINGS))
def test_prompt_strings_are_the_wheels(name):
    text, n, sha = UPSTREAM_STRINGS[name]
    assert len(text) == n
    assert hashlib.sha256(text.encode()).hexdigest() == sha


def test_user_text_puts_the_prompt_in_the_instruction_and_ends_at_the_reward_token():
    # inference.py lines 113-119 with HPSv3_7B.yaml's use_special_tokens: true
    text = P.user_text("a {red} fox")
    assert "Textual prompt - a {red} fox\n" in text
    assert text.endswith("ratings of this image: <|Reward|>\n\nEND\n")
    assert text.count(P.REWARD_TOKEN) == 1


@pytest.fixture(scope="module")
def scorer():
    from prefcli import plugins

    return plugins.get_scorer_spec("hpsv3").load("tiny", device="cpu")


def test_tiny_scores_are_mu_with_sigma_in_the_extras(scorer):
    import torch

    cands = PI.prefcli_candidates(PI.parity_files("non-square"), PI.SHORT_PROMPT)
    scores = scorer.score(cands)
    assert len(scores) == 3 and all(math.isfinite(s) for s in scores)
    assert len(set(scores)) == 3  # the images reach the score
    with torch.no_grad():
        mu_sigma = scorer.mu_sigma([_tensor(scorer, c) for c in cands], [PI.SHORT_PROMPT] * 3)
    assert [float(v) for v in mu_sigma[:, 0]] == pytest.approx(scores, rel=1e-5, abs=1e-6)
    assert [e["sigma"] for e in scorer.candidate_extras(cands)] == pytest.approx(
        [float(v) for v in mu_sigma[:, 1]], rel=1e-5, abs=1e-6
    )
    # the prompt reaches the score too
    other = scorer.score(PI.prefcli_candidates(PI.parity_files("non-square"), PI.LONG_PROMPT))
    assert other != pytest.approx(scores, rel=1e-6, abs=0)


def _tensor(scorer, c):
    from prefcli_hpsv3.pixels import load_image, to_tensor

    return to_tensor(load_image(c.original, scorer.options.min_pixels, scorer.options.max_pixels))


def test_batching_does_not_change_scores(scorer):
    cands = PI.prefcli_candidates(PI.parity_files("square") + PI.parity_files("RGBA"), PI.LONG_PROMPT)
    together = scorer.score(cands)
    one_by_one = [scorer.score([c])[0] for c in cands]
    assert together == pytest.approx(one_by_one, rel=1e-4, abs=1e-5)


def test_reward_equals_score_at_the_models_size_and_has_gradients(scorer):
    import numpy as np
    import torch
    from PIL import Image

    from prefcli.types import Candidate

    # 448×448 is smart_resize's fixed point for 256·28·28: neither path resizes
    arr = PI._pattern(448, 448, 3)
    cand = Candidate(image_id="x", prompt=PI.SHORT_PROMPT, loader=lambda: Image.fromarray(arr))
    want = scorer.score([cand])[0]
    px = torch.from_numpy(arr.astype(np.float32) / 255.0).permute(2, 0, 1)[None].requires_grad_(True)
    got = scorer.reward(px, PI.SHORT_PROMPT)
    assert float(got[0].detach()) == pytest.approx(want, rel=1e-5, abs=1e-6)
    got.sum().backward()
    assert px.grad is not None and float(px.grad.abs().sum()) > 0
    # another size is resized in torch and still differentiable
    small = torch.rand(2, 3, 64, 96, requires_grad=True)
    r = scorer.reward(small, [PI.SHORT_PROMPT, PI.LONG_PROMPT])
    r.sum().backward()
    assert r.shape == (2,) and float(small.grad.abs().sum()) > 0


def test_patches_equal_the_qwen2vl_image_processor(scorer):
    """prefcli's torch patching against transformers' own Qwen2VLImageProcessor on the same resized image.

    The palette files with a transparent entry are left out here: their RGB conversion keeps
    `info["transparency"]`, which today's `convert_to_rgb` composites on white (image_transforms.py)
    while transformers 4.45.2's, the one upstream runs, returns an RGB image as it is (lines 754-771);
    the parity test compares those with 4.45.2 itself."""
    import numpy as np
    import torch
    from transformers import Qwen2VLImageProcessor

    from prefcli_hpsv3.pixels import load_image, to_tensor
    from prefcli_hpsv3.tiny import PREPROCESSOR

    proc = Qwen2VLImageProcessor(
        **{k: v for k, v in PREPROCESSOR.items() if not k.endswith("_type") and k != "processor_class"}
    )
    for data in PI.parity_files("non-square") + PI.parity_files("RGBA") + PI.parity_files("palette")[2:]:
        im = load_image(PI.upstream_open(data), 256 * 28 * 28, 256 * 28 * 28)
        ref = proc(images=[im], return_tensors="pt")
        mine, grid = scorer.patches(to_tensor(im))
        assert list(grid) == ref["image_grid_thw"][0].tolist()
        np.testing.assert_allclose(mine.numpy(), ref["pixel_values"].numpy(), rtol=0, atol=1e-5)
        assert torch.is_tensor(mine)


def test_seeds_give_different_weights_and_a_seed_the_same():
    from prefcli_hpsv3 import tiny

    ids = {t: i for i, t in enumerate(tiny._special_tokens())}
    cfg = tiny.base_config(ids)
    a, b, c = (tiny.tiny_state_dict(cfg, 20, s) for s in (0, 0, 1))
    assert all(bool((a[k] == b[k]).all()) for k in a)
    assert any(not bool((a[k] == c[k]).all()) for k in a)
    # the official layout: 4.45 names and upstream's head (qwen2vl_trainer.py lines 99-106, hidden → 1024 → 16 → 2)
    assert {k for k in a if k.startswith("rm_head.")} == {
        f"rm_head.{i}.{w}" for i in (0, 3, 5) for w in ("weight", "bias")
    }
    assert tuple(a["rm_head.0.weight"].shape) == (1024, tiny.HIDDEN) and tuple(a["rm_head.5.weight"].shape) == (2, 16)
    assert "lm_head.weight" in a and "model.embed_tokens.weight" in a and any(k.startswith("visual.blocks.") for k in a)


def test_cli_rank_with_the_tiny_weights(tmp_path, capsys):
    from cli_runner import run_cli

    for i, data in enumerate(PI.parity_files("square") + PI.parity_files("palette")[:1]):
        (tmp_path / f"{i}.png").write_bytes(data)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    code, out, err = run_cli(
        capsys,
        "rank",
        tmp_path,
        "--scorer",
        "hpsv3",
        "--weights",
        "tiny",
        "--prompt",
        "a cabin",
        "--device",
        "cpu",
        "--format",
        "json",
    )
    assert code == 0, err
    import json

    doc = json.loads(out)
    rows = doc["results"]["ranking"]
    assert sorted(r["path"].rsplit("/", 1)[-1] for r in rows) == ["0.png", "1.png", "2.png", "3.png"]
    assert doc["scorer"] == "hpsv3" and "broken.png" in json.dumps(doc["skipped"])
    # σ beside μ in every row (the per-candidate extras)
    assert all(isinstance(r["sigma"], float) and math.isfinite(r["sigma"]) for r in rows)
    assert len({r["sigma"] for r in rows}) == 4
    from json_schemas import validate

    validate(doc, "rank")  # docs/schemas/rank.schema.json declares the column


def test_a_folder_without_the_checkpoint_is_one_line(tmp_path, capsys):
    from cli_runner import one_error_line, run_cli

    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(PI.parity_files("square")[0])
    (tmp_path / "w").mkdir()
    code, _, err = run_cli(
        capsys,
        "rank",
        tmp_path / "img",
        "--scorer",
        "hpsv3",
        "--weights",
        tmp_path / "w",
        "--prompt",
        "x",
        "--device",
        "cpu",
    )
    one_error_line(code, err, "HPSv3.safetensors")


def test_a_foreign_checkpoint_is_refused(tmp_path):
    import torch

    from prefcli import plugins
    from prefcli import weights as W
    from prefcli.errors import WeightsError
    from prefcli_hpsv3 import tiny

    d = tiny.save_tiny(tmp_path / "w")
    W.save_state_dict({"encoder.weight": torch.zeros(2, 2)}, d / "HPSv3.safetensors")
    with pytest.raises(WeightsError, match="not an HPSv3 checkpoint"):
        plugins.get_scorer_spec("hpsv3").load(str(d), device="cpu")


def test_load_in_4bit_needs_cuda():
    from prefcli import plugins
    from prefcli.errors import OptionError

    with pytest.raises(OptionError, match="load_in_4bit needs a CUDA device"):
        plugins.get_scorer_spec("hpsv3").load("tiny", device="cpu", options={"load_in_4bit": "true"})


def test_generate_steers_with_hpsv3_and_judges_with_it(tmp_path, capsys):
    import json

    from cli_runner import run_cli

    out = tmp_path / "gen"
    code, _, err = run_cli(
        capsys,
        "generate",
        "a fox",
        "--model",
        "tiny",
        "--reward",
        "hpsv3=1",
        "--judge",
        "clip",
        "--weights",
        "tiny",
        "--steps",
        "1",
        "--device",
        "cpu",
        "--out",
        out,
    )
    assert code == 0, err
    sidecars = [json.loads(p.read_text()) for p in out.rglob("*.json")]
    assert any("hpsv3" in json.dumps(s) for s in sidecars)
    code, _, err = run_cli(
        capsys,
        "generate",
        "a fox",
        "--model",
        "tiny",
        "--reward",
        "clip=1",
        "--judge",
        "hpsv3",
        "--weights",
        "tiny",
        "--steps",
        "1",
        "--device",
        "cpu",
        "--out",
        tmp_path / "gen2",
    )
    assert code == 0, err


def test_dry_run_counts_the_default_weights_without_loading(capsys):
    from cli_runner import run_cli

    code, out, err = run_cli(
        capsys, "generate", "a fox", "--reward", "hpsv3=1", "--dry-run", "--device", "cpu", "--format", "json"
    )
    assert code == 0, err
    import json

    rows = json.loads(out)["results"]["rows"]
    assert [r["parameters"] for r in rows if r["part"] == "reward"] == [7_750_000_000]


def test_the_checkpoint_file_alone_takes_config_and_tokenizer_from_base(tmp_path):
    """`--weights FILE -o base DIR`: the hub layout (HPSv3.safetensors in one repo, the base model's files in another)."""
    import shutil

    from prefcli import plugins
    from prefcli_hpsv3 import tiny

    d = tiny.save_tiny(tmp_path / "base", seed=2)
    ckpt = tmp_path / "ckpt" / "renamed.safetensors"
    ckpt.parent.mkdir()
    shutil.move(d / "HPSv3.safetensors", ckpt)
    spec = plugins.get_scorer_spec("hpsv3")
    a = spec.load(str(ckpt), device="cpu", options={"base": str(d)})
    b = spec.load(str(ckpt.parent), device="cpu", options={"base": str(d), "checkpoint": "renamed.safetensors"})
    cands = PI.prefcli_candidates(PI.parity_files("palette")[:2], PI.SHORT_PROMPT)
    assert a.score(cands) == pytest.approx(b.score(cands), rel=1e-6)
    assert a.weights_id == b.weights_id  # the file loaded, by content


def test_hub_weights_offline_and_not_cached_is_one_line(tmp_path, capsys, monkeypatch):
    from cli_runner import one_error_line, run_cli

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(PI.parity_files("square")[0])
    code, _, err = run_cli(capsys, "rank", tmp_path / "img", "--scorer", "hpsv3", "--prompt", "x", "--device", "cpu")
    # the advice fetches both: the checkpoint and the base model's small files, into one folder
    one_error_line(
        code,
        err,
        "hf download MizzenAI/HPSv3 HPSv3.safetensors --local-dir DIR && hf download Qwen/Qwen2-VL-7B-Instruct "
        "--include '*.json' --include '*.txt' --include '*.jinja' --local-dir DIR",
        "--weights DIR",
    )
