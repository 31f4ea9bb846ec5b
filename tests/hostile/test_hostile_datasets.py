"""Hostile files, part 3: datasets, training configs, resume state and a full disk.

Every input is built at test time from a tiny Pick-a-Pic-schema dataset (or a
tiny training run) and broken one way. Each goes through the commands that
read it, via the real console entry point (`prefcli.cli.main`, the handler
that turns errors into one line): exactly one `prefcli: error:` line naming
the file and the reason, exit 2, never a traceback (an unexpected exception
escapes `main` and fails the test).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import harness_fakes as fakes
from cli_runner import run_cli as _cli
from prefcli import plugins
from prefcli.errors import ConfigError

# --------------------------------------------------------------------------- helpers


def _error_line(err: str) -> str:
    """The one error line of `err` (asserting there is exactly one and no traceback)."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and not ln.startswith("prefcli: warning:")]
    lines = [ln for ln in lines if not ln.startswith("prefcli: ") or ln.startswith("prefcli: error: ")]
    assert len(lines) == 1 and lines[0].startswith("prefcli: error: "), err
    return lines[0]


def _refused(capsys, names: str | Path, reason: str, *args) -> str:
    code, _, err = _cli(capsys, *args)
    assert code == 2, err
    line = _error_line(err)
    assert str(names) in line and reason in line, line
    return line


@pytest.fixture(scope="module")
def good_ds(tmp_path_factory) -> Path:
    from _pickapic_fixture import write_shards
    from prefcli.data import pickapic

    root = tmp_path_factory.mktemp("hostile-ds")
    write_shards(root / "src", seed=5, n_shards=1)
    params = pickapic.BuildParams(n_ref=2, min_liked=10, val_users=2, test_users=3, seen_test_frac=0.5, name="hostile")
    pickapic.build(str(root / "src"), root / "ds", params, progress=False)
    return root / "ds"


@pytest.fixture
def mocks(monkeypatch, tmp_path):
    plugins.register_plugin(fakes.MockPlugin(), name="hostile-mocks")
    fakes.reset()
    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path / "cache"))  # never the user's cache
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("PREFCLI_DEBUG", raising=False)
    yield fakes
    plugins.unregister_plugin(name="hostile-mocks")
    fakes.reset()


TRAIN_CONFIG = """
name: hostile-tiny
model: {{tiny: {{latents: 1, text_layers: 1, vision_layers: 1}}, template: compact}}
data: {{n_ref: {n_ref}, val_max_tasks: 4, pixel_cache_mb: 16}}
optim: {{lr: {lr}, warmup_steps: 0}}
run: {{per_device_batch: 2, grad_accum: 1, log_every: 1, eval_every: 0, checkpoint_every: 1, keep_last: 3,
       num_threads: 1, device: cpu}}
stages:
  - {{name: main, steps: {steps}, loss_base: true, loss_cp: true, train_base: true, train_lora: false}}
"""


def _config(
    tmp_path: Path, name: str = "cfg.yaml", n_ref: int = 2, lr: str = "3.0e-3", steps: int = 2, extra: str = ""
) -> Path:
    p = tmp_path / name
    p.write_text(TRAIN_CONFIG.format(n_ref=n_ref, lr=lr, steps=steps) + extra)
    return p


def _copy(ds: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "ds"
    shutil.copytree(ds, dst)
    return dst


def _edit_info(ds: Path, **changes) -> None:
    p = ds / "dataset.json"
    info = json.loads(p.read_text())
    for k, v in changes.items():
        if "." in k:
            a, b = k.split(".")
            info[a][b] = v
        else:
            info[k] = v
    p.write_text(json.dumps(info))


def _edit_table(path: Path, change) -> None:
    import pyarrow.parquet as pq

    table = change(pq.read_table(path))
    pq.write_table(table, path)


def _replace_column(table, name, values, typ=None):
    import pyarrow as pa

    i = table.schema.get_field_index(name)
    return table.set_column(i, name, pa.array(values, typ))


# --------------------------------------------------------------------------- dataset.json

INFO_CASES = {
    "format_version_abc": (
        lambda ds: _edit_info(ds, format_version="abc"),
        "format_version must be a positive integer, got 'abc'",
    ),
    "format_version_list": (
        lambda ds: _edit_info(ds, format_version=[1]),
        "format_version must be a positive integer, got [1]",
    ),
    "format_version_null": (
        lambda ds: _edit_info(ds, format_version=None),
        "format_version must be a positive integer, got None",
    ),
    "format_version_bool": (
        lambda ds: _edit_info(ds, format_version=True),
        "format_version must be a positive integer",
    ),
    "format_version_newer": (lambda ds: _edit_info(ds, format_version=99), "newer than this prefcli reads"),
    "build_list": (lambda ds: _edit_info(ds, build=[1, 2]), "build must be an object, got list"),
    "build_n_ref_string": (
        lambda ds: _edit_info(ds, **{"build.n_ref": "8"}),
        "build.n_ref must be a positive integer, got '8'",
    ),
    "build_n_ref_negative": (
        lambda ds: _edit_info(ds, **{"build.n_ref": -3}),
        "build.n_ref must be a positive integer, got -3",
    ),
    "counts_string": (lambda ds: _edit_info(ds, counts="many"), "counts must be an object"),
    "counts_splits_list": (lambda ds: _edit_info(ds, counts={"splits": [1]}), "counts.splits must map each split"),
    "source_list": (lambda ds: _edit_info(ds, source=["local"]), "source must be an object"),
    "name_list": (lambda ds: _edit_info(ds, name=["x"]), "name must be a string"),
    "truncated_json": (
        lambda ds: (ds / "dataset.json").write_text((ds / "dataset.json").read_text()[:40]),
        "unreadable",
    ),
    "top_level_list": (lambda ds: (ds / "dataset.json").write_text("[1, 2]"), "not a prefcli dataset description"),
    "not_utf8": (lambda ds: (ds / "dataset.json").write_bytes(b'{"format_version": "\xff\xfe"}'), "unreadable"),
}


@pytest.mark.parametrize("case", sorted(INFO_CASES))
def test_a_bad_dataset_json_is_one_line_in_data_info_eval_and_train(case, good_ds, tmp_path, capsys, mocks):
    ds = _copy(good_ds, tmp_path)
    edit, reason = INFO_CASES[case]
    edit(ds)
    info = ds / "dataset.json"
    _refused(capsys, info, reason, "data", "info", ds)
    _refused(capsys, info, reason, "data", "info", ds, "--format", "json")
    _refused(capsys, info, reason, "eval", ds, "--scorer", "mock-free", "--no-progress", "--no-cache")
    _refused(
        capsys,
        info,
        reason,
        "train",
        "--config",
        _config(tmp_path),
        "--data",
        ds,
        "--out",
        tmp_path / "run",
        "--no-progress",
    )
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_bad_dataset_json_through_a_real_process_has_no_traceback(good_ds, tmp_path):
    ds = _copy(good_ds, tmp_path)
    _edit_info(ds, format_version="abc")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PREFCLI_TESTING": "1"}
    env.pop("PREFCLI_DEBUG", None)
    r = subprocess.run(
        [sys.executable, "-m", "prefcli", "data", "info", str(ds)], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 2
    line = _error_line(r.stderr)
    assert f"{ds / 'dataset.json'}: format_version must be a positive integer, got 'abc'" in line


# --------------------------------------------------------------------------- tasks.parquet / pairs.parquet


def _liked(value):
    return lambda t: _replace_column(t, "liked_index", [value] * t.num_rows)


def _cast(name, typ):
    def change(t):
        import pyarrow as pa

        return t.set_column(t.schema.get_field_index(name), name, t[name].cast(getattr(pa, typ)()))

    return change


def _to_strings(name):
    def change(t):
        return _replace_column(t, name, [str(v) for v in t[name].to_pylist()])

    return change


def _drop(name):
    return lambda t: t.drop_columns([name])


def _short_prompts(t):
    return _replace_column(t, "candidate_prompts", [p[:1] for p in t["candidate_prompts"].to_pylist()])


def _unknown_history(t):
    return _replace_column(
        t, "history_pair_ids", [["no-such-pair"] * len(h) for h in t["history_pair_ids"].to_pylist()]
    )


def _no_candidates(t):
    import pyarrow as pa

    return _replace_column(t, "candidate_image_ids", [[] for _ in range(t.num_rows)], pa.list_(pa.string()))


TASK_CASES = {
    # name: (file, change, reason in the message)
    "liked_index_out_of_range": ("tasks.parquet", _liked(7), "liked_index 7 is out of range for"),
    "liked_index_negative": ("tasks.parquet", _liked(-1), "liked_index -1 is out of range for"),
    "liked_index_huge": ("tasks.parquet", _liked(2**31 - 1), "is out of range for"),
    "liked_index_null": ("tasks.parquet", _liked(None), "liked_index is null"),
    "liked_index_float": (
        "tasks.parquet",
        _cast("liked_index", "float64"),
        "column liked_index holds double, expected int32",
    ),
    "n_ref_string": ("tasks.parquet", _to_strings("n_ref"), "column n_ref holds string, expected int32"),
    "split_int": (
        "tasks.parquet",
        lambda t: _replace_column(t, "split", [1] * t.num_rows),
        "column split holds int64, expected string",
    ),
    "candidates_string": (
        "tasks.parquet",
        _to_strings("candidate_image_ids"),
        "column candidate_image_ids holds string",
    ),
    "no_candidates": ("tasks.parquet", _no_candidates, "no candidate images"),
    "prompts_short": ("tasks.parquet", _short_prompts, "candidate prompts for"),
    "missing_liked_index": ("tasks.parquet", _drop("liked_index"), "missing column(s) liked_index"),
    "missing_n_ref": ("tasks.parquet", _drop("n_ref"), "missing column(s) n_ref"),
    "unknown_history_pair": ("tasks.parquet", _unknown_history, "no-such-pair"),
    "pairs_seen_string": ("pairs.parquet", _to_strings("seen"), "column seen holds string, expected bool"),
    "pairs_missing_user": ("pairs.parquet", _drop("user_id"), "missing column(s) user_id"),
    "pairs_liked_null": (
        "pairs.parquet",
        lambda t: _replace_column(t, "liked_image_id", [None] * t.num_rows, t.schema.field("liked_image_id").type),
        "column liked_image_id is null in row pair_id",
    ),
}


def _break_file(ds: Path, name: str, change) -> Path:
    path = ds / name
    _edit_table(path, change)
    return path


@pytest.mark.parametrize("case", sorted(TASK_CASES))
def test_a_bad_tasks_or_pairs_table_is_one_line_in_eval_and_train(case, good_ds, tmp_path, capsys, mocks):
    ds = _copy(good_ds, tmp_path)
    name, change, reason = TASK_CASES[case]
    path = _break_file(ds, name, change)
    named = path if case != "unknown_history_pair" else ds
    for protocol in ("1v1", "1v3"):
        _refused(
            capsys,
            named,
            reason,
            "eval",
            ds,
            "--scorer",
            "mock-hist",
            "--protocol",
            protocol,
            "--no-progress",
            "--no-cache",
        )
    _refused(
        capsys,
        named,
        reason,
        "train",
        "--config",
        _config(tmp_path),
        "--data",
        ds,
        "--out",
        tmp_path / "run",
        "--no-progress",
    )
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    "case",
    [
        "info:format_version_abc",
        "info:build_n_ref_string",
        "tasks:liked_index_out_of_range",
        "tasks:n_ref_string",
        "tasks:missing_liked_index",
    ],
)
def test_a_bad_dataset_is_one_line_in_bench_and_its_out_is_not_written(case, good_ds, tmp_path, capsys, mocks):
    ds = _copy(good_ds, tmp_path)
    kind, name = case.split(":")
    if kind == "info":
        edit, reason = INFO_CASES[name]
        edit(ds)
        named = ds / "dataset.json"
    else:
        file, change, reason = TASK_CASES[name]
        named = _break_file(ds, file, change)
    out = tmp_path / "bench"
    _refused(capsys, named, reason, "bench", ds, "--scorers", "mock-free,mock-hist", "--no-progress", "--out", out)
    assert not out.exists()


@pytest.mark.parametrize("name", ["tasks.parquet", "pairs.parquet"])
def test_a_truncated_or_missing_table_is_one_line(name, good_ds, tmp_path, capsys, mocks):
    ds = _copy(good_ds, tmp_path)
    data = (ds / name).read_bytes()
    (ds / name).write_bytes(data[: len(data) // 2])
    args = ("eval", ds, "--scorer", "mock-free", "--no-progress", "--no-cache")
    _refused(capsys, ds / name, "unreadable parquet", *args)
    _refused(
        capsys,
        ds / name,
        "unreadable parquet",
        "train",
        "--config",
        _config(tmp_path),
        "--data",
        ds,
        "--out",
        tmp_path / "run",
        "--no-progress",
    )
    (ds / name).unlink()
    _refused(capsys, ds, f"{name} is missing", *args)


def test_widened_integer_columns_still_read(good_ds, tmp_path, capsys, mocks):
    """pandas writes int64 and large_string: same meaning, so they are read, not refused."""
    import pyarrow as pa

    ds = _copy(good_ds, tmp_path)
    _edit_table(
        ds / "tasks.parquet",
        lambda t: _cast("liked_index", "int64")(_cast("n_ref", "int64")(t)).set_column(
            t.schema.get_field_index("task_id"), "task_id", t["task_id"].cast(pa.large_string())
        ),
    )
    code, out, err = _cli(
        capsys, "eval", ds, "--scorer", "mock-free", "--no-progress", "--no-cache", "--format", "json"
    )
    assert code == 0, err
    assert json.loads(out[out.index("{") :])["results"]["n_tasks"] > 0


# --------------------------------------------------------------------------- training configs

CONFIG_CASES = {
    "lr_nan": ({"optim": {"lr": float("nan")}}, "optim.lr: must be a finite number > 0, got nan"),
    "lr_inf": ({"optim": {"lr": float("inf")}}, "optim.lr: must be a finite number > 0, got inf"),
    "lr_string_inf": ({"optim": {"lr": "inf"}}, "optim.lr: must be a finite number > 0, got inf"),
    "lr_negative": ({"optim": {"lr": -1e-3}}, "optim.lr: must be a finite number > 0, got -0.001"),
    "lr_zero": ({"optim": {"lr": 0}}, "optim.lr: must be a finite number > 0"),
    "stage_lr_nan": (
        {"stages": [{"name": "main", "steps": 1, "train_base": True, "lr": float("nan")}]},
        "stages[0].lr: must be a finite number > 0, got nan",
    ),
    "stage_lr_negative": (
        {"stages": [{"name": "main", "steps": 1, "train_base": True, "lr": -2.0}]},
        "stages[0].lr: must be a finite number > 0, got -2.0",
    ),
    "stage_lr_inf": (
        {"stages": [{"name": "main", "steps": 1, "train_base": True, "lr": float("inf")}]},
        "stages[0].lr: must be a finite number > 0, got inf",
    ),
    "beta1_one": ({"optim": {"betas": [1.0, 0.999]}}, "optim.betas[0]: must lie in [0, 1), got 1.0"),
    "beta2_negative": ({"optim": {"betas": [0.9, -0.1]}}, "optim.betas[1]: must lie in [0, 1), got -0.1"),
    "beta_nan": ({"optim": {"betas": [float("nan"), 0.9]}}, "optim.betas: expected two finite numbers"),
    "betas_three": ({"optim": {"betas": [0.9, 0.99, 0.999]}}, "optim.betas: expected two finite numbers"),
    "betas_string": ({"optim": {"betas": ["a", "b"]}}, "optim.betas: expected two finite numbers"),
    "betas_scalar": ({"optim": {"betas": 0.9}}, "optim.betas: expected a list, got 0.9"),
    "eps_negative": ({"optim": {"eps": -1e-8}}, "optim.eps: must be a finite number >= 0, got -1e-08"),
    "eps_nan": ({"optim": {"eps": float("nan")}}, "optim.eps: must be a finite number >= 0, got nan"),
    "weight_decay_negative": (
        {"optim": {"weight_decay": -0.01}},
        "optim.weight_decay: must be a finite number >= 0, got -0.01",
    ),
    "weight_decay_inf": (
        {"optim": {"weight_decay": float("inf")}},
        "optim.weight_decay: must be a finite number >= 0, got inf",
    ),
    "warmup_negative": ({"optim": {"warmup_steps": -5}}, "optim.warmup_steps: must be >= 0, got -5"),
    "grad_norm_nan": ({"optim": {"max_grad_norm": float("nan")}}, "optim.max_grad_norm: must be a finite number >= 0"),
    "min_lr_ratio": ({"optim": {"min_lr_ratio": 2.0}}, "optim.min_lr_ratio: must lie in [0, 1], got 2.0"),
    "n_ref_negative": ({"data": {"n_ref": -1}}, "data.n_ref: must be >= 0"),
    "lr_text": ({"optim": {"lr": "fast"}}, "optim.lr: expected a number, got 'fast'"),
    "seed_huge": ({"run": {"seed": 2**70}}, "run.seed: must lie in 0 .. 4294967295"),
    "model_seed_negative": ({"model": {"seed": -1}}, "model.seed: must lie in 0 .. 4294967295, got -1"),
}


def _yaml(obj) -> str:
    """The override as YAML text (PyYAML spells NaN and inf .nan and .inf)."""
    import yaml

    return yaml.safe_dump(obj, default_flow_style=True)


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_a_bad_training_config_is_refused_naming_file_and_key(case, tmp_path):
    from prefcli.train.config import load_config

    over, reason = CONFIG_CASES[case]
    base = _config(tmp_path, "base.yaml")
    # As overrides (what the library API takes) ...
    with pytest.raises(ConfigError) as e:
        load_config(base, over)
    assert reason in str(e.value) and str(base) in str(e.value), str(e.value)
    # ... and as a file that extends the good one (what a user writes).
    path = tmp_path / "bad.yaml"
    path.write_text(f"extends: {base}\n" + "\n".join(f"{k}: {_yaml(v).strip()}" for k, v in over.items()) + "\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert reason in str(e.value) and str(path) in str(e.value), str(e.value)


@pytest.mark.parametrize("case", ["lr_inf", "stage_lr_negative", "beta1_one", "eps_negative", "seed_huge"])
def test_a_bad_training_config_through_train_is_one_line_and_trains_nothing(case, good_ds, tmp_path, capsys):
    over, reason = CONFIG_CASES[case]
    base = _config(tmp_path, "base.yaml")
    path = tmp_path / "bad.yaml"
    path.write_text(f"extends: {base}\n" + "\n".join(f"{k}: {_yaml(v).strip()}" for k, v in over.items()) + "\n")
    _refused(
        capsys, path, reason, "train", "--config", path, "--data", good_ds, "--out", tmp_path / "run", "--no-progress"
    )
    assert not (tmp_path / "run").exists()


def test_n_ref_larger_than_any_history_is_one_line_before_a_model_is_built(good_ds, tmp_path, capsys, monkeypatch):
    from prefcli.vlm import model as vlm_model

    def never(*a, **kw):
        raise AssertionError("a model was built for a run whose data cannot give its histories")

    monkeypatch.setattr(vlm_model, "build_model", never)
    cfg = _config(tmp_path, n_ref=500)
    line = _refused(
        capsys,
        cfg,
        "data.n_ref: 500 history pairs plus a target need 501 training pairs per user",
        "train",
        "--config",
        cfg,
        "--data",
        good_ds,
        "--out",
        tmp_path / "run",
        "--no-progress",
    )
    assert f"the most any user of {good_ds} has is" in line and "lower data.n_ref to at most" in line
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_huge_tiny_seed_as_the_base_is_one_line(good_ds, tmp_path, capsys):
    """`train` has no --weights; the model comes from model.base and model.seed (bounded above)."""
    cfg = _config(tmp_path, extra="")
    text = cfg.read_text().replace("model: {tiny:", "model: {base: 'tiny:99999999999999999999999999', tiny:")
    cfg.write_text(text)
    _refused(
        capsys,
        cfg,
        "model: base 'tiny:99999999999999999999999999': use 'tiny', 'idefics2-8b'",
        "train",
        "--config",
        cfg,
        "--data",
        good_ds,
        "--out",
        tmp_path / "run",
        "--no-progress",
    )
    assert not (tmp_path / "run" / "checkpoints").exists()


# --------------------------------------------------------------------------- resume state


@pytest.fixture(scope="module")
def trained_run(good_ds, tmp_path_factory):
    """A 2-step tiny run stopped after step 1 (so --resume has somewhere to go), and its config."""
    from prefcli.train.config import load_config
    from prefcli.train.loop import train

    root = tmp_path_factory.mktemp("hostile-run")
    cfg_path = _config(root, steps=2)
    train(load_config(cfg_path), data=good_ds, out=root / "run", max_steps=1, progress=False)
    return root / "run", cfg_path


def _run_copy(trained_run, tmp_path) -> Path:
    run, _ = trained_run
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def _resume(*, cfg: Path, data: Path, run: Path) -> tuple:
    """`prefcli train --resume` of a run folder, the command line every resume case below starts from."""
    return ("train", "--config", cfg, "--data", data, "--out", run, "--resume", "--no-progress")


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_resume_with_another_config_is_refused_and_says_what_differs(trained_run, good_ds, tmp_path, capsys):
    run = _run_copy(trained_run, tmp_path)
    before = _snapshot(run)
    other = _config(tmp_path, "other.yaml", lr="1.0e-3", steps=2)
    line = _refused(
        capsys,
        run,
        "--resume with a different config",
        *_resume(cfg=other, data=good_ds, run=run),
    )
    assert "optim.lr: 0.003 -> 0.001" in line, line
    assert _snapshot(run) == before  # nothing of the run was touched


def test_resume_with_the_same_config_but_another_thread_count_goes_on(trained_run, good_ds, tmp_path, capsys):
    run = _run_copy(trained_run, tmp_path)
    _, cfg = trained_run
    # A half-written last metrics line (a kill while logging) is dropped, the history kept.
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 2, "lo')
    code, out, err = _cli(
        capsys,
        *_resume(cfg=cfg, data=good_ds, run=run),
        "--threads",
        "1",
        "--format",
        "json",
    )
    assert code == 0, err
    assert json.loads(out[out.index("{") :])["results"]["steps"] == 2
    recs = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs if "loss" in r] == [1, 2]


BAD_STEPS = {
    "string": ("abc", "bad step 'abc' (expected a non-negative integer)"),
    "negative": (-4, "bad step -4 (expected a non-negative integer)"),
    "float": (1.5, "bad step 1.5"),
    "null": (None, "bad step None"),
    "bool": (True, "bad step True"),
    "other_folder": (7, "says step 7, but the checkpoint folder is step-00000001"),
}


@pytest.mark.parametrize("case", sorted(BAD_STEPS))
def test_a_bad_trainer_state_step_is_one_line(case, trained_run, good_ds, tmp_path, capsys):
    run = _run_copy(trained_run, tmp_path)
    _, cfg = trained_run
    state_path = run / "checkpoints" / "step-00000001" / "trainer_state.json"
    state = json.loads(state_path.read_text())
    value, reason = BAD_STEPS[case]
    state["step"] = value
    state_path.write_text(json.dumps(state))
    before = _snapshot(run)
    _refused(
        capsys,
        state_path,
        reason,
        *_resume(cfg=cfg, data=good_ds, run=run),
    )
    assert _snapshot(run) == before


@pytest.mark.parametrize("text,reason", [("{not json", "unreadable trainer state"), ("[1]", "not a trainer state")])
def test_an_unreadable_trainer_state_is_one_line(text, reason, trained_run, good_ds, tmp_path, capsys):
    run = _run_copy(trained_run, tmp_path)
    _, cfg = trained_run
    state_path = run / "checkpoints" / "step-00000001" / "trainer_state.json"
    state_path.write_text(text)
    _refused(
        capsys,
        state_path,
        reason,
        *_resume(cfg=cfg, data=good_ds, run=run),
    )


def test_a_step_beyond_the_config_is_one_line(trained_run, good_ds, tmp_path, capsys):
    run = _run_copy(trained_run, tmp_path)
    _, cfg = trained_run
    old = run / "checkpoints" / "step-00000001"
    state = json.loads((old / "trainer_state.json").read_text())
    state["step"] = 50
    (old / "trainer_state.json").write_text(json.dumps(state))
    old.rename(run / "checkpoints" / "step-00000050")
    state_path = run / "checkpoints" / "step-00000050" / "trainer_state.json"
    _refused(
        capsys,
        state_path,
        "step 50 lies beyond this config's 2 steps",
        *_resume(cfg=cfg, data=good_ds, run=run),
    )


def test_a_corrupt_middle_metrics_line_is_one_line(trained_run, good_ds, tmp_path, capsys):
    run = _run_copy(trained_run, tmp_path)
    _, cfg = trained_run
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(["{garbage"] + lines) + "\n")
    before = (run / "metrics.jsonl").read_bytes()
    _refused(
        capsys,
        run / "metrics.jsonl",
        "line 1 is not JSON",
        *_resume(cfg=cfg, data=good_ds, run=run),
    )
    assert (run / "metrics.jsonl").read_bytes() == before


# --------------------------------------------------------------------------- disk full
#
# A real full disk: a 64 MiB tmpfs mounted in a user namespace (`unshare -rm`, no root needed),
# filled to the last byte at a chosen moment by the driver below, which then runs the real
# console entry point. Skipped where user namespaces are not allowed; the in-process tests
# after it inject ENOSPC into the same writers everywhere.

DRIVER = r"""
import contextlib, hashlib, io, json, os, sys
from pathlib import Path

sys.path.insert(0, {tests!r})
mnt, spec_path = Path(sys.argv[1]), Path(sys.argv[2])
spec = json.loads(spec_path.read_text())


def fill():
    with contextlib.suppress(OSError), open(mnt / "fill", "wb") as f:
        while True:
            f.write(b"x" * 4096)
            f.flush()


def snap(root):
    root = Path(root)
    return {{p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}} if root.exists() else {{}}


def run(argv):
    from prefcli.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as e:
            code = e.code
        except BaseException:
            import traceback

            traceback.print_exc()
            code = "exception"
    return code, err.getvalue()


if spec.get("mocks"):
    import harness_fakes
    from prefcli import plugins

    plugins.register_plugin(harness_fakes.MockPlugin(), name="hostile-mocks")
result = {{}}
result["first"] = run(spec["first"])
result["before"] = {{k: snap(mnt / k) for k in spec["snap"]}}
at = spec["fill_at"]
if at == "start":
    fill()
else:  # fill the disk right before this function writes
    import importlib

    mod_name, _, attr = at.rpartition(".")
    owner = importlib.import_module(mod_name)
    obj_name, _, meth = attr.partition(":")
    holder = getattr(owner, obj_name) if meth else owner
    name = meth or obj_name
    real = getattr(holder, name)

    def filled(*a, **kw):
        fill()
        return real(*a, **kw)

    setattr(holder, name, filled)
result["second"] = run(spec["second"])
if at != "start":
    setattr(holder, name, real)
result["after_full"] = {{k: snap(mnt / k) for k in spec["snap"]}}
with contextlib.suppress(FileNotFoundError):
    os.unlink(mnt / "fill")
result["leftovers"] = sorted(p.name for p in mnt.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".lock"))
if spec.get("third"):
    result["third"] = run(spec["third"])
spec_path.with_suffix(".out.json").write_text(json.dumps(result))
"""


def _userns_tmpfs_works() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = Path("/tmp") / f"prefcli-userns-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        r = subprocess.run(
            ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {probe}"], capture_output=True, timeout=30
        )
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        probe.rmdir()


needs_tmpfs = pytest.mark.skipif(
    not _userns_tmpfs_works(), reason="needs unprivileged user namespaces to mount a small tmpfs (a real full disk)"
)


def _on_a_full_disk(tmp_path: Path, spec: dict, size_mb: int = 64) -> dict:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(tests=str(Path(__file__).resolve().parents[1])))
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec, default=str))
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "PREFCLI_TESTING": "1",
        "PREFCLI_CACHE": str(mnt / "default-cache"),
    }
    env.pop("PREFCLI_DEBUG", None)
    script = f"mount -t tmpfs -o size={size_mb}m tmpfs {mnt} && exec {sys.executable} {driver} {mnt} {spec_path}"
    r = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=300)
    out = spec_path.with_suffix(".out.json")
    assert out.is_file(), r.stdout + r.stderr
    return json.loads(out.read_text())


def _full_disk_line(result: tuple, path: str) -> str:
    code, err = result
    assert code == 2, err
    line = _error_line(err)
    assert path in line and ("No space left on device" in line or "no space left on the device" in line), line
    return line


@pytest.mark.slow  # a Python importing torch per case, end to end; the in-process ENOSPC tests below are fast
@needs_tmpfs
@pytest.mark.parametrize("fill_at", ["start", "prefcli.harness.cache.ScoreStore:put_scores"])
def test_disk_full_under_eval_names_the_cache_file_and_keeps_the_cache(fill_at, good_ds, tmp_path):
    cache = tmp_path / "mnt" / "cache"
    base = ["eval", good_ds, "--scorer", "mock-free", "--cache-dir", cache, "--no-progress", "--batch-size", "1"]
    res = _on_a_full_disk(
        tmp_path,
        {
            "mocks": True,
            "first": base + ["--limit", "2"],
            "snap": ["cache"],
            "fill_at": fill_at,
            "second": base,
            "third": base + ["--limit", "2"],
        },
    )
    assert res["first"][0] == 0, res["first"][1]
    line = _full_disk_line(res["second"], str(cache))
    assert str(cache / ("index.sqlite" if fill_at == "start" else "mock-free--")) in line, line
    before, after = res["before"]["cache"], res["after_full"]["cache"]
    # Every cache file there before is byte-identical (sqlite may add its -wal/-shm side files).
    assert before and {k: after.get(k) for k in before} == before
    assert res["third"][0] == 0, res["third"][1]  # and it still serves the next run
    assert res["leftovers"] == []


@pytest.mark.slow  # a Python importing torch per case, end to end; the in-process ENOSPC tests below are fast
@needs_tmpfs
def test_disk_full_under_eval_out_names_the_output_file(good_ds, tmp_path):
    out = tmp_path / "mnt" / "res" / "eval.json"
    base = ["eval", good_ds, "--scorer", "mock-free", "--no-cache", "--no-progress", "--out", out]
    res = _on_a_full_disk(
        tmp_path,
        {
            "mocks": True,
            "first": base,
            "snap": ["res"],
            "fill_at": "prefcli.harness.results.write_json",
            "second": base,
        },
    )
    assert res["first"][0] == 0, res["first"][1]
    _full_disk_line(res["second"], str(out))
    assert res["after_full"]["res"] == res["before"]["res"]  # the old result, whole
    assert res["leftovers"] == []


@pytest.mark.slow  # a Python importing torch per case, end to end; the in-process ENOSPC tests below are fast
@needs_tmpfs
@pytest.mark.parametrize(
    "fill_at", ["start", "prefcli.train.checkpoint.save_checkpoint", "prefcli.vlm.checkpoint.save_vlm"]
)
def test_disk_full_under_train_names_the_path_and_keeps_the_checkpoints(fill_at, good_ds, tmp_path):
    cfg = _config(tmp_path, steps=2)
    run = tmp_path / "mnt" / "run"
    base = ["train", "--config", cfg, "--data", good_ds, "--out", run, "--no-progress"]
    # With space again the run resumes and finishes (checked once: the three cases leave the same state).
    third = base + ["--resume"] if fill_at == "prefcli.train.checkpoint.save_checkpoint" else None
    res = _on_a_full_disk(
        tmp_path,
        {
            "first": base + ["--max-steps", "1"],
            "snap": ["run/checkpoints"],
            "fill_at": fill_at,
            "second": base + ["--resume"],
            "third": third,
        },
    )
    assert res["first"][0] == 0, res["first"][1]
    named = {
        "start": tmp_path / "mnt" / ".run.lock",
        "prefcli.train.checkpoint.save_checkpoint": run / "checkpoints" / "step-00000002",
        "prefcli.vlm.checkpoint.save_vlm": run / "checkpoints" / "step-00000002",
    }[fill_at]
    _full_disk_line(res["second"], str(named))
    assert res["after_full"]["run/checkpoints"] == res["before"]["run/checkpoints"]  # byte-identical, nothing added
    assert res["leftovers"] == []
    if third:
        assert res["third"][0] == 0, res["third"][1]


# In-process fault injection (runs everywhere): ENOSPC raised the way the OS raises it, without a file name.


def _enospc(*a, **kw):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


def test_an_atomic_write_on_a_full_disk_names_the_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    from prefcli import atomic

    target = tmp_path / "out" / "results.json"
    atomic.write_text(target, "old")
    real = Path.write_bytes

    def half_then_full(self, data):
        real(self, data[: len(data) // 2])  # part of it reached the disk
        _enospc()

    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    with pytest.raises(OSError) as e:
        atomic.write_text(target, "new content " * 100)
    assert e.value.filename == str(target) and "No space left on device" in str(e.value)
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.json"]


def test_a_safetensors_write_on_a_full_disk_is_an_oserror_naming_the_checkpoint(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    from prefcli.train import checkpoint as ck
    from prefcli.vlm.model import set_trainable, tiny_vlm

    m = tiny_vlm(template="compact", tiny={"latents": 1, "text_layers": 1, "vision_layers": 1}, seed=0)
    set_trainable(m, base=True, lora=False)
    import torch

    opt = torch.optim.AdamW(m.trainable_parameters(), lr=1e-3)
    root = tmp_path / "checkpoints"
    ck.save_checkpoint(root, 1, m, opt, {"step": 1, "scheduler": {}})
    before = _snapshot(root)

    def full(*a, **kw):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr("safetensors.torch.save_file", full)
    with pytest.raises(OSError) as e:
        ck.save_checkpoint(root, 2, m, opt, {"step": 2, "scheduler": {}})
    assert e.value.filename == str(root / "step-00000002") and e.value.errno == 28
    assert _snapshot(root) == before  # step 1 byte-identical, no step 2, no temp folder


def test_a_metrics_line_cut_by_a_full_disk_is_removed(tmp_path, monkeypatch):
    from prefcli.train.common import MetricsLog

    path = tmp_path / "metrics.jsonl"
    metrics = MetricsLog(path, True, None)
    metrics.log({"step": 1, "loss": 0.5})
    before = path.read_bytes()
    real_open = Path.open

    class HalfFile:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[: len(text) // 2])
            self.f.flush()
            _enospc()

    def opener(self, mode="r", *a, **kw):
        f = real_open(self, mode, *a, **kw)
        return HalfFile(f) if mode == "a" else f

    monkeypatch.setattr(Path, "open", opener)
    with pytest.raises(OSError) as e:
        metrics.log({"step": 2, "loss": 0.25})
    monkeypatch.undo()
    assert e.value.filename == str(path)
    assert path.read_bytes() == before  # no half line for the next --resume to trip on


def test_a_full_cache_database_is_one_line_and_the_cache_is_intact(good_ds, tmp_path, capsys, mocks, monkeypatch):
    """sqlite's own "database or disk is full" (SQLITE_FULL, forced with max_page_count)."""
    import sqlite3

    from prefcli.harness import cache as cache_mod

    cache = tmp_path / "cache"
    base = ["eval", good_ds, "--scorer", "mock-free", "--cache-dir", cache, "--no-progress", "--batch-size", "1"]
    code, _, err = _cli(capsys, *base, "--limit", "2")
    assert code == 0, err

    def rows():
        out = {}
        for f in sorted(cache.glob("*.sqlite")):
            with sqlite3.connect(f) as con:
                assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                table = "identities" if f.name == "index.sqlite" else "scores"
                out[f.name] = set(con.execute(f"SELECT * FROM {table}"))
        return out

    before = rows()
    assert before and all(before.values())
    real = cache_mod._connect

    def capped(path):
        con = real(path)
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        con.execute(f"PRAGMA max_page_count = {max(pages, 1)}")
        return con

    monkeypatch.setattr(cache_mod, "_connect", capped)
    code, _, err = _cli(capsys, *base)
    assert code == 2, err
    line = _error_line(err)
    assert f"{cache}/mock-free--" in line and "database or disk is full" in line, line
    after = rows()  # every score cached before is still there, the database whole
    assert set(after) == set(before) and all(before[k] <= after[k] for k in before)
    monkeypatch.setattr(cache_mod, "_connect", real)
    code, _, err = _cli(capsys, *base, "--limit", "2")  # and the next run reads it
    assert code == 0, err


def test_a_corrupt_cache_file_is_one_line(good_ds, tmp_path, capsys, mocks):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "index.sqlite").write_bytes(b"this is not a database" * 100)
    line = _refused(
        capsys,
        cache / "index.sqlite",
        "not a readable score cache",
        "eval",
        good_ds,
        "--scorer",
        "mock-free",
        "--cache-dir",
        cache,
        "--no-progress",
    )
    assert "move it away" in line
    assert (cache / "index.sqlite").read_bytes() == b"this is not a database" * 100


# --------------------------------------------------------------------------- the builder's shard identity


def test_a_resume_over_a_shard_changed_in_the_middle_is_refused(tmp_path, monkeypatch):
    """A rewrite that keeps the size and the first and last bytes (the parquet footer) is caught:
    the journal holds a sha256 of the whole shard, checked before pass 2 reads its rows."""
    from _pickapic_fixture import write_shards
    from prefcli.data import pickapic
    from prefcli.errors import DataError

    src = tmp_path / "src"
    write_shards(src, seed=2, n_shards=2)
    # The quick head+tail identity covers only 64 bytes at each end here, so the middle of
    # these small shards lies outside it, as it does for a real 500 MB shard.
    monkeypatch.setattr(pickapic, "IDENTITY_TAIL_BYTES", 64)
    params = pickapic.BuildParams(n_ref=2, min_liked=10, val_users=2, test_users=3, seen_test_frac=0.5)

    def crash(phase, i):
        if phase == "pass1" and i == 1:
            raise KeyboardInterrupt  # pass 1 read both shards; pass 2 has not started

    monkeypatch.setattr(pickapic, "_after_shard", crash)
    with pytest.raises(KeyboardInterrupt):
        pickapic.build(str(src), tmp_path / "ds", params, progress=False)
    monkeypatch.setattr(pickapic, "_after_shard", None)
    journal = json.loads((tmp_path / "ds.partial" / ".work" / "progress.json").read_text())
    victim = sorted(src.glob("*.parquet"))[0]
    entry = journal["pass1"][victim.name]
    data = bytearray(victim.read_bytes())
    assert entry["size"] == len(data) and entry["sha256"] == __import__("hashlib").sha256(data).hexdigest()
    original = bytes(data)
    mid = len(data) // 2
    data[mid] ^= 0xFF  # one byte in the middle: same size, same footer
    victim.write_bytes(bytes(data))
    with pytest.raises(
        DataError,
        match=rf"{victim.name}: the shard changed since the unfinished build read it "
        r"\(its content hash differs\)",
    ):
        pickapic.build(str(src), tmp_path / "ds", params, progress=False)
    victim.write_bytes(original)
    res = pickapic.build(str(src), tmp_path / "ds", params, progress=False)
    assert res.info["source_stats"]["shards_skipped"] == 0


def test_a_journal_from_before_the_whole_file_hash_still_resumes(tmp_path, monkeypatch):
    from _pickapic_fixture import write_shards
    from prefcli.data import pickapic

    src = tmp_path / "src"
    write_shards(src, seed=2, n_shards=2)
    params = pickapic.BuildParams(n_ref=2, min_liked=10, val_users=2, test_users=3, seen_test_frac=0.5)

    def crash(phase, i):
        if phase == "pass1" and i == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(pickapic, "_after_shard", crash)
    with pytest.raises(KeyboardInterrupt):
        pickapic.build(str(src), tmp_path / "ds", params, progress=False)
    monkeypatch.setattr(pickapic, "_after_shard", None)
    path = tmp_path / "ds.partial" / ".work" / "progress.json"
    journal = json.loads(path.read_text())
    for entry in journal["pass1"].values():
        entry.pop("sha256")  # what the previous builder wrote
    path.write_text(json.dumps(journal))
    res = pickapic.build(str(src), tmp_path / "ds", params, progress=False)
    assert res.info["source_stats"]["shards_skipped"] == 0


def test_a_full_disk_while_pickscore_star_saves_names_the_checkpoint(tmp_path, monkeypatch):
    from prefcli.train import pickscore_star

    final = tmp_path / "checkpoints" / "step-00000003"

    def fill(tmp):
        (tmp / "model").mkdir()
        (tmp / "model" / "part").write_bytes(b"x")
        _enospc()

    with pytest.raises(OSError) as e:
        pickscore_star._atomic_folder(final, fill)
    assert e.value.filename == str(final) and e.value.errno == 28
    assert list((tmp_path / "checkpoints").iterdir()) == []  # no temp folder left
