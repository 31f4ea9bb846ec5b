"""PickScore*: PickScore's objective, a tiny offline training run, resume, the trained folder as a bench row.

Upstream: github:yuvalkirstain/PickScore @ f79607f, trainer/criterions/clip_criterion.py
`CLIPCriterion.calc_loss` (lines 41-121, `in_batch_negatives=False`, `is_distributed=False`).
The reference numbers below were measured by running that very function
(with omegaconf installed beside it) on the tensors `_features()` draws.
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from prefcli.cli import app
from prefcli.train.pickscore_star import PairDraw, pickscore_loss

# CLIPCriterion.calc_loss on _features(), logit_scale 100/7, num_examples_per_prompt [1, 2, 2, 1, 3]:
UPSTREAM_LOSS = {
    "mixed": 0.6193792819976807,  # label_0 = [1, 0, 1, 0.5, 1] (a tie at index 3), label_1 = 1 - label_0
    "liked_first": 2.5700738430023193,  # label_0 = 1 everywhere (prefcli: image 0 is the liked one)
}
UPSTREAM_UNIFORM = 2.945702075958252  # label_0 = 1, num_examples_per_prompt all 1


def _features():
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(3):
        x = torch.randn(5, 8, generator=g)
        out.append(x / x.norm(dim=-1, keepdim=True))
    return out


def test_loss_is_pickscores():
    t, i0, i1 = _features()
    scale = torch.tensor(100.0 / 7)
    n = torch.tensor([1.0, 2.0, 2.0, 1.0, 3.0])
    l0 = torch.tensor([1.0, 0.0, 1.0, 0.5, 1.0])
    assert pickscore_loss(t, i0, i1, scale, l0, 1 - l0, n).item() == pytest.approx(UPSTREAM_LOSS["mixed"], rel=1e-6)
    ones = torch.ones(5)
    assert pickscore_loss(t, i0, i1, scale, ones, 0 * ones, n).item() == pytest.approx(
        UPSTREAM_LOSS["liked_first"], rel=1e-6
    )
    assert pickscore_loss(t, i0, i1, scale, ones, 0 * ones, ones).item() == pytest.approx(UPSTREAM_UNIFORM, rel=1e-6)
    # Swapping the images and the labels is the same loss: the order inside a pair carries nothing.
    assert pickscore_loss(t, i1, i0, scale, 0 * ones, ones, n).item() == pytest.approx(
        UPSTREAM_LOSS["liked_first"], rel=1e-6
    )


def test_pair_draw_is_a_pure_function_of_the_batch_index():
    from types import SimpleNamespace

    pairs = [SimpleNamespace(prompt=f"p{i % 3}", pair_id=i) for i in range(10)]
    a, b = PairDraw(pairs, seed=1), PairDraw(pairs, seed=1)
    first = [p.pair_id for k in range(5) for p in a.batch(k, 4)]
    assert [p.pair_id for p in b.batch(3, 4)] == first[12:16]  # no state: batch 3 alone is the same
    assert sorted(first[:10]) == list(range(10))  # one epoch sees every pair once
    assert a.per_prompt == {"p0": 4, "p1": 3, "p2": 3}


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    """tiny-cpu-pickscore-star, smaller: a small world and 12 steps."""
    d = tmp_path_factory.mktemp("ps-star")
    cfg = d / "tiny.yaml"
    cfg.write_text(
        "extends: tiny-cpu-pickscore-star\n"
        "name: test-pickscore-star\n"
        "data:\n"
        "  world: {preset: default, n_users: 40, pairs_per_user: 16, image_size: 32, n_prompts: 6, images_per_prompt: 8, world_seed: 0, user_seed: 0}\n"
        "  world_build: {n_ref: 2, min_liked: 6, val_users: 6, test_users: 10, hold_out: user, seed: 0}\n"
        "  val_max_tasks: 40\n"
        "run: {per_device_batch: 8, global_batch: 16, eval_every: 0, checkpoint_every: 4, log_every: 2}\n"
        "stages:\n"
        "  - {name: main, steps: 12, history: false, loss_base: true, loss_cp: false, train_base: true, train_lora: false}\n"
    )
    return cfg, d


def _train(cfg, out, *extra):
    res = CliRunner().invoke(
        app,
        ["train", "--config", str(cfg), "--out", str(out), "--no-progress", "--format", "json", *extra],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout[res.stdout.index("{") :])["results"]


@pytest.fixture(scope="module")
def trained(tiny_config, monkeypatch_module):
    cfg, d = tiny_config
    monkeypatch_module.setenv("PREFCLI_CACHE_DIR", str(d / "cache"))
    row = _train(cfg, d / "run")
    return cfg, d, row


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_train_writes_a_pickscore_folder_and_metrics(trained):
    from safetensors.torch import load_file

    from prefcli_pickscore.scorer import load_pickscore

    cfg, d, row = trained
    run = d / "run"
    assert row["steps"] == 12 and not row["stopped_early"] and 0.0 <= row["final_val_acc"] <= 1.0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000008", "step-00000012"]  # keep_last 2
    info = json.loads((run / "model" / "prefcli_model.json").read_text())
    assert info["trainer"] == "pickscore" and info["step"] == 12
    recs = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if "loss" in r] == [2, 4, 6, 8, 10, 12]
    # Every weight trained, logit_scale included: the folder differs from the tiny PickScore it started from.
    start = load_pickscore("tiny").model.state_dict()
    after = load_file(str(run / "model" / "model.safetensors"))
    changed = [k for k in after if not torch.equal(after[k], start[k])]
    assert (
        "logit_scale" in changed
        and any(k.startswith("vision_model.") for k in changed)
        and any(k.startswith("text_model.") for k in changed)
    )


def test_interrupted_run_resumes_exactly(trained):
    from safetensors.torch import load_file

    cfg, d, _ = trained
    part = d / "resumed"
    first = _train(cfg, part, "--max-steps", "5")
    assert first["stopped_early"] and first["steps"] == 5
    assert (part / "checkpoints" / "step-00000005").is_dir() and not (part / "model").exists()
    again = _train(cfg, part, "--resume")
    assert again["steps"] == 12 and not again["stopped_early"]
    a = load_file(str(d / "run" / "model" / "model.safetensors"))
    b = load_file(str(part / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(ln)["step"] for ln in (part / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)  # no duplicated steps after the resume


def test_trained_folder_is_a_bench_row_beside_pickscore(trained, tmp_path):
    cfg, d, _ = trained
    run_cfg = json.loads((d / "run" / "train_config.json").read_text())
    dataset = run_cfg["_dataset"]
    out = tmp_path / "bench"
    res = CliRunner().invoke(app, [
        "bench", dataset, "--scorers", "pickscore,pickscore-star", "--weights", "pickscore=tiny",
        "--weights", f"pickscore-star={d / 'run' / 'model'}", "--protocols", "1v1", "--out", str(out),
        "--no-cache", "--no-progress", "--bootstrap", "20", "--device", "cpu",
    ], catch_exceptions=False)  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = {r["scorer"]: r for r in json.loads((out / "table1_1v1.json").read_text())["rows"]}
    assert {"pickscore", "pickscore-star", "Random"} <= set(rows)
    assert rows["pickscore-star"]["n_tasks"] == rows["pickscore"]["n_tasks"] > 0
    runs = json.loads((out / "results.json").read_text())["results"]["runs"]
    star = next(r for r in runs if r["scorer"] == "pickscore-star")
    assert star["weights_id"].startswith("pickscore-star:") and "#sha256=" in star["weights_id"]
    # The same folder also loads as plain `pickscore` weights and scores the same.
    from picture_factory import structured_images
    from prefcli import plugins
    from prefcli.types import Candidate

    c = [Candidate.from_image(im, prompt="a red fox") for im in structured_images([(32, 32)] * 3, 1)]
    s1 = plugins.load_scorer("pickscore", weights=str(d / "run" / "model"), device="cpu").score(c)
    s2 = plugins.load_scorer("pickscore-star", weights=str(d / "run" / "model"), device="cpu").score(c)
    assert s1 == pytest.approx(s2)


def test_pickscore_star_needs_a_trained_folder(tmp_path):
    from prefcli import plugins
    from prefcli.errors import WeightsError

    with pytest.raises(WeightsError, match="needs --weights"):
        plugins.load_scorer("pickscore-star", device="cpu")
    with pytest.raises(WeightsError, match="not a PickScore"):
        plugins.load_scorer("pickscore-star", weights=str(tmp_path), device="cpu")


def test_dry_run_counts_clip_h(capsys):
    res = CliRunner().invoke(
        app, ["train", "--config", "pickscore-star", "--dry-run", "--format", "json"], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)["results"]
    total = next(r for r in doc["parameters"] if r["part"] == "all")
    assert total["total"] == total["trainable:main"] == 986_109_441  # CLIP ViT-H/14: open_clip lists 986.11M
    assert doc["batch"] == {"per_device_pairs": 8, "grad_accum": 8, "processes": 1, "global_pairs": 64}
    mem = doc["memory_per_device"]
    assert mem["trainable_params_and_adam_gib"] == pytest.approx(986_109_441 * 16 / 2**30, abs=0.01)
    assert 15 < mem["total_gib"] < 40


def test_config_checks():
    from prefcli.errors import ConfigError
    from prefcli.train.config import load_config

    cfg = load_config("pickscore-star")
    assert (cfg.trainer, cfg.optim.lr, cfg.optim.weight_decay, cfg.run.global_batch, cfg.stages[0].steps) == (
        "pickscore",
        1e-5,
        1e-2,
        64,
        5000,
    )
    with pytest.raises(ConfigError, match="trainer"):
        load_config("pickscore-star", {"trainer": "dpo"})
    with pytest.raises(ConfigError, match="no LoRA"):
        load_config("pickscore-star", {"model": {"lora": True}})
