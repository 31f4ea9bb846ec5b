"""The training loop on a tiny synthetic world: samples, loss decrease, exact resume, the CLI, dry-run counts."""

from __future__ import annotations

import json

import pytest
import torch

from json_schemas import validate  # docs/schemas/: every command's JSON
from prefcli.train.config import load_config

WORLD = {
    "preset": "opposed",
    "n_users": 24,
    "pairs_per_user": 16,
    "image_size": 32,
    "n_prompts": 8,
    "images_per_prompt": 16,
    "world_seed": 3,
    "user_seed": 3,
}
BUILD = {"n_ref": 4, "val_users": 4, "test_users": 4, "hold_out": "user", "seed": 0}

CONFIG = """
extends: tiny-cpu-cp
name: test-tiny
model: {tiny: {latents: 1, text_layers: 1, vision_layers: 1}}
data: {n_ref: 4, val_max_tasks: 12, pixel_cache_mb: 16}
optim: {lr: 3.0e-3, warmup_steps: 1}
run: {per_device_batch: 3, grad_accum: 2, log_every: 1, eval_every: 0, checkpoint_every: 3, keep_last: 2, num_threads: 2}
stages:
  - {name: attributes, kind: attributes, steps: 2, history: false, train_base: true, train_lora: false}
  - {name: main, steps: 3, loss_base: true, loss_cp: true, train_base: true, train_lora: false}
  - {name: tokens, steps: 2, add_tokens: true, train_base: false, train_vision: false, train_lora: false, train_tokens: true}
"""


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    from prefcli.train.loop import synthetic_dataset

    return synthetic_dataset(WORLD, BUILD, root=tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "test-tiny.yaml"
    p.write_text(CONFIG)
    return p


def test_samples_use_other_pairs_of_the_same_user_shuffled(dataset_dir):
    from prefcli.data.dataset import Dataset
    from prefcli.train.data import TrainSampler

    ds = Dataset.open(dataset_dir)
    by_user = ds.pairs_by_user("train")
    sampler = TrainSampler(by_user, 4, seed=1)
    own = {u: {(p.liked_image_id, p.disliked_image_id) for p in ps} for u, ps in by_user.items()}
    firsts = set()
    for step in range(40):
        for s in sampler.batch(step, 0, 0, 4):
            imgs = [it.image for it in s.items]
            assert len(s.items) == 8 and s.liked not in imgs and s.disliked not in imgs
            # the history pairs are the same user's, labels as stored
            for a, b in zip(s.items[::2], s.items[1::2]):
                liked, disliked = (a.image, b.image) if a.label == "+" else (b.image, a.image)
                assert {a.label, b.label} == {"+", "-"}
                assert (liked, disliked) in own[s.user_id]
            firsts.add(s.items[0].label)
    assert firsts == {"+", "-"}  # within-pair order is shuffled
    # a pure function of (seed, step, micro, process): the data position is the step
    a = [(s.liked, [i.image for i in s.items]) for s in sampler.batch(7, 1, 0, 5)]
    b = [(s.liked, [i.image for i in s.items]) for s in sampler.batch(7, 1, 0, 5)]
    c = [(s.liked, [i.image for i in s.items]) for s in sampler.batch(7, 1, 1, 5)]
    assert a == b and a != c
    assert all(not s.items for s in sampler.batch(3, 0, 0, 3, history=False))


def test_few_steps_decrease_the_loss_on_a_fixed_batch(dataset_dir):
    from prefcli.data.dataset import Dataset
    from prefcli.train.data import PixelStore, TrainSampler, collate_pairs
    from prefcli.train.loop import PairForward
    from prefcli.vlm.losses import preference_loss
    from prefcli.vlm.model import set_trainable, tiny_vlm

    ds = Dataset.open(dataset_dir)
    vlm = tiny_vlm(template="compact", tiny={"latents": 1, "text_layers": 1, "vision_layers": 1}, seed=0)
    set_trainable(vlm, base=True, lora=False)
    vlm.train()
    store = PixelStore(ds, vlm.preprocess, 16)
    samples = TrainSampler(ds.pairs_by_user("train"), 4, seed=0).batch(0, 0, 0, 6)
    b = collate_pairs(vlm.encoder, samples, store)
    assert b.input_ids.shape[0] == 12 and b.pixel_values.shape[0] == len(set(b.image_index.tolist()))
    model = PairForward(vlm)
    opt = torch.optim.AdamW(vlm.trainable_parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        logits = model(b.input_ids, b.attention_mask, b.pixel_values, b.image_index)
        loss = preference_loss(logits[:6], logits[6:], vlm.plus_id, vlm.minus_id).total
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.5


def test_dedup_forward_equals_prefvlm_forward(dataset_dir):
    from prefcli.data.dataset import Dataset
    from prefcli.train.data import PixelStore, TrainSampler, collate_pairs
    from prefcli.train.loop import target_logits
    from prefcli.vlm.model import tiny_vlm

    ds = Dataset.open(dataset_dir)
    vlm = tiny_vlm(template="compact", tiny={"latents": 2}, n_pref_tokens=2, seed=2).eval()
    store = PixelStore(ds, vlm.preprocess, 16)
    samples = TrainSampler(ds.pairs_by_user("train"), 3, seed=0).batch(1, 0, 0, 3)
    b = collate_pairs(vlm.encoder, samples, store)
    seqs = [vlm.encoder.encode(s.items, s.liked) for s in samples] + [
        vlm.encoder.encode(s.items, s.disliked) for s in samples
    ]
    with torch.no_grad():
        ours = target_logits(vlm, b.input_ids, b.attention_mask, b.pixel_values, b.image_index)
        ref = vlm(vlm.make_batch(seqs, pixel_values=b.pixel_values[b.image_index]))
    torch.testing.assert_close(ours, ref.logits, rtol=1e-4, atol=1e-5)


def _trainable_tensors(run_dir):
    from safetensors.torch import load_file

    d = run_dir / "model"
    out = load_file(str(d / "model.safetensors"))
    out.update({"pref": load_file(str(d / "pref_tokens.safetensors"))["pref_tokens"]})
    return out


def test_resume_ends_with_the_same_weights(tmp_path, dataset_dir, config_file):
    from prefcli.train import checkpoint as ck
    from prefcli.train.loop import train

    cfg = load_config(config_file)
    full = train(cfg, data=dataset_dir, out=tmp_path / "full", progress=False)
    assert full.steps == 7 and not full.stopped_early
    part = train(load_config(config_file), data=dataset_dir, out=tmp_path / "part", max_steps=4, progress=False)
    assert part.stopped_early and part.model_dir == tmp_path / "part" / "checkpoints" / "step-00000004" / "model"
    assert [p.name for p in ck.list_checkpoints(tmp_path / "part" / "checkpoints")] == [
        "step-00000003",
        "step-00000004",
    ]
    with pytest.raises(Exception, match="--resume"):
        train(load_config(config_file), data=dataset_dir, out=tmp_path / "part", progress=False)
    res = train(load_config(config_file), data=dataset_dir, out=tmp_path / "part", resume=True, progress=False)
    assert res.steps == 7
    a, b = _trainable_tensors(tmp_path / "full"), _trainable_tensors(tmp_path / "part")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    # the weights did train: they differ from the seeded initial model
    import dataclasses

    from prefcli.vlm.checkpoint import read_spec
    from prefcli.vlm.model import build_model

    spec, _ = read_spec(tmp_path / "full" / "model")
    init = build_model(dataclasses.replace(spec, n_pref_tokens=0)).core.state_dict()
    changed = [k for k in init if not torch.equal(init[k], a[k])]
    assert len(changed) > len(init) // 2
    # metrics.jsonl of the resumed run has each step once, in order
    steps = [
        json.loads(ln)["step"]
        for ln in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
        if "loss" in json.loads(ln)
    ]
    assert steps == sorted(set(steps)) and steps[-1] == 7


def test_train_cli_with_max_steps(tmp_path, dataset_dir, config_file):
    from typer.testing import CliRunner

    from prefcli.cli import app

    out = tmp_path / "cli"
    r = CliRunner().invoke(
        app,
        [
            "train",
            "--config",
            str(config_file),
            "--data",
            str(dataset_dir),
            "--out",
            str(out),
            "--max-steps",
            "2",
            "--no-progress",
            "--format",
            "json",
        ],
    )
    assert r.exit_code == 0, r.output
    row = validate(json.loads(r.stdout[r.stdout.index("{") :]))["results"]
    assert row["steps"] == 2 and row["stopped_early"] is True
    lines = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [rec["step"] for rec in lines if "loss_attributes" in rec] == [1, 2]
    assert (out / "checkpoints" / "step-00000002" / "trainer_state.json").is_file()
    r = CliRunner().invoke(app, ["train", "--config", "no-such-config", "--out", str(out)])
    assert r.exit_code != 0


def test_dry_run_counts_the_real_8b_architecture():
    from prefcli.train.dryrun import dry_run

    res = dry_run(load_config("preftoken-idefics2-8b"), num_processes=8)
    rows = {r["part"]: r for r in res["parameters"]}
    base = sum(rows[k]["total"] for k in ("vision", "connector", "text", "lm_head"))
    assert base == 8_402_768_112
    assert rows["lora"]["total"] == 23_326_720 and rows["pref_tokens"]["total"] == 40_960
    assert (
        rows["lora"]["trainable:stage1"] == 23_326_720 and rows["vision"]["trainable:stage1"] == rows["vision"]["total"]
    )
    assert rows["all"]["trainable:stage2"] == 40_960  # stage 2 trains the tokens only
    assert res["batch"] == {"per_device_pairs": 2, "grad_accum": 4, "processes": 8, "global_pairs": 64}
    mem = res["memory_per_device"]
    assert mem["stage"] == "stage1" and 10 < mem["total_gib"] < 80
    assert 1500 < res["sequence_tokens"]["max_prompt"] < 4000


def test_train_finds_the_world_a_cli_built_dataset_came_from(tmp_path, config_file):
    """`data synthetic --out W` + `data pickapic --source W --out D` + `train --data D`: the
    attributes stage finds W through the source recorded in D/dataset.json."""
    from typer.testing import CliRunner

    from prefcli.cli import app

    world, ds, out = tmp_path / "my-world", tmp_path / "my-dataset", tmp_path / "run"
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "data",
            "synthetic",
            "--out",
            str(world),
            "--preset",
            "opposed",
            "--users",
            "24",
            "--pairs-per-user",
            "16",
            "--prompts",
            "8",
            "--images-per-prompt",
            "16",
            "--image-size",
            "32",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        [
            "data",
            "pickapic",
            "--source",
            str(world),
            "--out",
            str(ds),
            "--n-ref",
            "4",
            "--val-users",
            "4",
            "--test-users",
            "4",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        [
            "train",
            "--config",
            str(config_file),
            "--data",
            str(ds),
            "--out",
            str(out),
            "--max-steps",
            "1",
            "--no-progress",
            "--format",
            "json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (out / "checkpoints" / "step-00000001" / "trainer_state.json").is_file()


def test_same_seed_same_machine_same_threads_gives_the_same_model_bit_for_bit(tmp_path, dataset_dir, config_file):
    """Two trainings of one config, dataset and seed (two torch threads) end with identical weights and logs.

    32 pairs per micro-step make the image-feature gather's gradient large enough (>= 32768 elements)
    for torch's parallel atomic-add kernel on two threads, which made history models diverge between
    identical runs; run.deterministic (the default) selects the deterministic kernel."""
    from safetensors.torch import load_file

    from prefcli.train.loop import train

    runs = []
    for k in range(2):
        cfg = load_config(config_file, {"run": {"num_threads": 2, "per_device_batch": 32, "grad_accum": 1}})
        train(cfg, data=dataset_dir, out=tmp_path / f"r{k}", progress=False)
        runs.append(tmp_path / f"r{k}")
    a, b = (load_file(str(r / "model" / "model.safetensors")) for r in runs)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    ta, tb = (load_file(str(r / "model" / "pref_tokens.safetensors")) for r in runs)
    assert all(torch.equal(ta[k], tb[k]) for k in ta)
    losses = [[ln for ln in (r / "metrics.jsonl").read_text().splitlines() if '"loss"' in ln] for r in runs]
    strip = lambda ls: [{k: v for k, v in json.loads(ln).items() if k not in ("pairs_per_s", "elapsed_s")} for ln in ls]  # noqa: E731
    assert strip(losses[0]) == strip(losses[1])


def test_validation_reports_balanced_accuracy_and_the_history_swap(tmp_path, dataset_dir, config_file):
    from prefcli.train.loop import train

    cfg = load_config(config_file, {"run": {"num_threads": 1}})
    train(cfg, data=dataset_dir, out=tmp_path / "v", progress=False)
    vals = [json.loads(ln) for ln in (tmp_path / "v" / "metrics.jsonl").read_text().splitlines() if "val_acc" in ln]
    assert vals and all(
        {"val_acc", "val_balanced", "val_swap", "val_swap_balanced", "val_tasks"} <= v.keys() for v in vals
    )
    assert all(0 <= v["val_balanced"] <= 1 and 0 <= v["val_swap_balanced"] <= 1 for v in vals)
    # train_config.json says what was trained on: the dataset given and its world, not the config's world
    rec = json.loads((tmp_path / "v" / "train_config.json").read_text())
    assert rec["_dataset"] == str(dataset_dir) and rec["data"]["dataset"] == str(dataset_dir)
    assert rec["data"]["world"] is None
    assert rec["_world"]["world_seed"] == WORLD["world_seed"] and rec["_world"]["n_users"] == WORLD["n_users"]
    assert rec["_dataset_info"]


def test_history_free_validation_has_no_swap(tmp_path, dataset_dir):
    from prefcli.train.loop import train

    cfg = load_config(
        "tiny-cpu-population",
        {
            "model": {"tiny": {"latents": 1, "text_layers": 1, "vision_layers": 1}},
            "data": {"n_ref": 4, "val_max_tasks": 8, "pixel_cache_mb": 16},
            "run": {"per_device_batch": 2, "log_every": 1, "eval_every": 0, "checkpoint_every": 0, "num_threads": 1},
            "stages": [
                {
                    "name": "population",
                    "steps": 2,
                    "history": False,
                    "loss_cp": False,
                    "train_base": True,
                    "train_lora": False,
                }
            ],
        },
    )
    train(cfg, data=dataset_dir, out=tmp_path / "p", progress=False)
    vals = [json.loads(ln) for ln in (tmp_path / "p" / "metrics.jsonl").read_text().splitlines() if "val_acc" in ln]
    assert vals and "val_balanced" in vals[-1] and "val_swap" not in vals[-1]


def test_swap_term_trains_and_is_logged(tmp_path, dataset_dir, config_file):
    """The toy history-sensitivity term (loss_swap) adds a logged term; runs without it draw the same samples."""
    from prefcli.data.dataset import Dataset
    from prefcli.train.data import TrainSampler
    from prefcli.train.loop import train

    ds = Dataset.open(dataset_dir)
    s = TrainSampler(ds.pairs_by_user("train"), 4, seed=1)
    plain, swapped = s.batch(3, 0, 0, 5), s.batch(3, 0, 0, 5, swap=True)
    assert [(x.liked, x.items) for x in plain] == [(x.liked, x.items) for x in swapped]
    for x in swapped:
        imgs = [it.image for it in x.swap_items]
        assert len(imgs) == 8 and x.liked not in imgs and x.disliked not in imgs
    cfg = load_config(
        config_file,
        {
            "run": {"num_threads": 1},
            "stages": [{"name": "main", "steps": 2, "loss_swap": 1.0, "train_base": True, "train_lora": False}],
        },
    )
    train(cfg, data=dataset_dir, out=tmp_path / "s", progress=False)
    logs = [json.loads(ln) for ln in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines() if '"loss"' in ln]
    assert all("loss_swap" in rec and rec["loss"] > rec["loss_swap"] for rec in logs)
    with pytest.raises(Exception, match="loss_swap"):
        load_config(config_file, {"stages": [{"name": "m", "history": False, "loss_swap": 1.0, "train_base": True}]})


def test_init_from_starts_from_a_trained_model(tmp_path, dataset_dir, config_file):
    """model.init_from copies a trained model's weights before the first stage (a toy curriculum across worlds)."""
    from safetensors.torch import load_file

    from prefcli.errors import ConfigError
    from prefcli.train.loop import train

    over = {
        "run": {"num_threads": 1, "checkpoint_every": 0},
        "stages": [{"name": "main", "steps": 1, "train_base": True, "train_lora": False}],
    }
    train(load_config(config_file, over), data=dataset_dir, out=tmp_path / "a", progress=False)
    src = load_file(str(tmp_path / "a" / "model" / "model.safetensors"))
    # zero learning rate: the second run ends exactly where the first one's weights were
    over2 = {
        **over,
        "model": {"init_from": str(tmp_path / "a")},
        "stages": [{"name": "main", "steps": 1, "train_base": True, "train_lora": False, "lr": 1e-30}],
    }
    train(load_config(config_file, over2), data=dataset_dir, out=tmp_path / "b", progress=False)
    got = load_file(str(tmp_path / "b" / "model" / "model.safetensors"))
    assert all(torch.allclose(src[k], got[k], atol=1e-12) for k in src)
    with pytest.raises(ConfigError, match="init_from"):
        train(
            load_config(config_file, {**over, "model": {"init_from": str(tmp_path / "nope")}}),
            data=dataset_dir,
            out=tmp_path / "c",
            progress=False,
        )
