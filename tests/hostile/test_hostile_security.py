"""Hostile files, part 1: nothing from a file is ever executed, and no read leaves its root.

Every hostile input here is built at test time (nothing shipped). Each test
has the side effect a successful attack would have (a file written outside
the test's inputs) and checks it did not happen, plus a positive control
showing the attack works against the unrestricted call.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cli_runner import run_cli
from prefcli.errors import DataError, WeightsError

REPO = Path(__file__).resolve().parents[2]

# A TorchScript module whose __setstate__ (run by torch.jit.load) maps - and so creates - any file.
_TS_SOURCE = textwrap.dedent("""
    import sys
    from typing import Tuple
    import torch

    class PromptPool(torch.nn.Module):
        def __init__(self, target: str):
            super().__init__()
            self.prompt = torch.zeros(10, 8)
            self.target = target

        @torch.jit.export
        def __getstate__(self) -> Tuple[torch.Tensor, str, bool]:
            return (self.prompt, self.target, self.training)

        @torch.jit.export
        def __setstate__(self, state: Tuple[torch.Tensor, str, bool]) -> None:
            self.prompt = state[0]
            self.target = state[1]
            self.training = state[2]
            self.prompt = torch.from_file(self.target, shared=True, size=80).view(10, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    torch.jit.save(torch.jit.script(PromptPool(sys.argv[1])), sys.argv[2])
""")


def _torchscript_archive(path: Path, target: Path) -> Path:
    # Built in a child process: scripting a class needs its source file, and it keeps
    # torch.jit state out of the test process.
    script = path.parent / "make_ts.py"
    script.write_text(_TS_SOURCE)
    subprocess.run(
        [sys.executable, "-W", "ignore", str(script), str(target), str(path)],
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert not target.exists()
    return path


@pytest.fixture(scope="module")
def ts_archive(tmp_path_factory):
    d = tmp_path_factory.mktemp("ts")
    target = d / "written-by-the-archive"
    return _torchscript_archive(d / "prompt_pool.pt", target), target


def test_positive_control_loading_the_torchscript_archive_writes_the_file(ts_archive, tmp_path):
    """The attack is real: the old path (torch.load weights_only=False -> torch.jit.load) creates the file."""
    import shutil

    arch, target = ts_archive
    code = f"import torch; torch.jit.load({str(arch)!r})"
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert target.exists()
    target.unlink()
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.parametrize("name", ["prompt_pool.pt", "adapter_model.bin"])
def test_torchscript_release_is_refused_before_anything_loads_it(ts_archive, tmp_path, name):
    from prefcli.convert import TorchScriptError, learn_user_pref

    arch, target = ts_archive
    rel = tmp_path / "rel"
    rel.mkdir()
    (rel / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    if name == "prompt_pool.pt":
        (rel / name).write_bytes(arch.read_bytes())
    else:
        torch.save({"prompt": torch.zeros(10, 8)}, rel / "prompt_pool.pt")
        (rel / name).write_bytes(arch.read_bytes())
    with pytest.raises(TorchScriptError, match=rf"{re.escape(str(rel / name))}: is a TorchScript archive"):
        learn_user_pref(rel, tmp_path / "out")
    assert not target.exists()
    assert not (tmp_path / "out").exists()


def test_torchscript_weights_are_refused_everywhere(ts_archive, tmp_path):
    """The scorers' loader (weights.load_state_dict) and the hpsv2 converter refuse it the same way."""
    from prefcli.convert import checkpoint_to_safetensors
    from prefcli.weights import load_state_dict

    arch, target = ts_archive
    with pytest.raises(WeightsError, match="TorchScript archive"):
        load_state_dict(arch)
    with pytest.raises(WeightsError, match="TorchScript archive"):
        checkpoint_to_safetensors(arch, tmp_path / "x.safetensors")
    assert not target.exists() and not (tmp_path / "x.safetensors").exists()


def test_cli_convert_torchscript_is_one_line_exit_2(ts_archive, tmp_path):
    arch, target = ts_archive
    rel = tmp_path / "rel"
    rel.mkdir()
    (rel / "prompt_pool.pt").write_bytes(arch.read_bytes())
    (rel / "adapter_config.json").write_text("{}")
    r = _cli("convert", "learn-user-pref", str(rel), "--out", str(tmp_path / "o"))
    assert (
        r.returncode == 2
        and _one_line(r.stderr)
        and "TorchScript" in r.stderr
        and str(rel / "prompt_pool.pt") in r.stderr
    )
    assert not target.exists()


class _Reducer:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


@pytest.mark.parametrize("fn", [os.system, eval, exec, getattr, __import__, subprocess.call])
def test_hpsv2_conversion_refuses_code_calls(tmp_path, fn):
    from prefcli.convert import checkpoint_to_safetensors

    marker = tmp_path / "pwned"
    args = {
        os.system: (f"touch {marker}",),
        subprocess.call: (["touch", str(marker)],),
        eval: (f"open({str(marker)!r}, 'w')",),
        exec: (f"open({str(marker)!r}, 'w')",),
        getattr: (Path, "cwd"),
        __import__: ("os",),
    }[fn]
    torch.save({"state_dict": {"w": torch.ones(2)}, "args": _Reducer(fn, args)}, tmp_path / "hps.pt")
    with pytest.raises(WeightsError, match=r"hps\.pt: .*(calls|refused)"):
        checkpoint_to_safetensors(tmp_path / "hps.pt", tmp_path / "out.safetensors")
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_prefcli_convert_hpsv2_keeps_the_weights_and_drops_the_pickled_objects(tmp_path, capsys):
    import argparse

    from safetensors.torch import load_file

    state = {"visual.proj": torch.randn(4, 3), "logit_scale": torch.tensor(4.6)}
    torch.save({"state_dict": state, "args": argparse.Namespace(lr=1e-5), "epoch": 3}, tmp_path / "HPS.pt")
    r = _run(
        capsys, "convert", "hpsv2", str(tmp_path / "HPS.pt"), str(tmp_path / "hps.safetensors"), "--format", "json"
    )
    assert r.returncode == 0, r.stderr
    back = load_file(str(tmp_path / "hps.safetensors"))
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
    # an existing output is not clobbered
    r = _run(capsys, "convert", "hpsv2", str(tmp_path / "HPS.pt"), str(tmp_path / "hps.safetensors"))
    assert r.returncode == 2 and "--overwrite" in r.stderr and _one_line(r.stderr)


def test_the_hpsv2_refusal_points_at_prefcli_convert_hpsv2(tmp_path):
    import argparse

    from prefcli_hpsv2.scorer import load_checkpoint

    torch.save({"state_dict": {"w": torch.ones(1)}, "args": argparse.Namespace(lr=1)}, tmp_path / "HPS.pt")
    with pytest.raises(WeightsError, match=r"prefcli convert hpsv2 .*HPS\.pt"):
        load_checkpoint(tmp_path / "HPS.pt")


def test_no_torch_load_without_weights_only_and_no_unpickling_outside_the_loader():
    """The acceptance grep of issue 10, over every shipped Python file."""
    shipped = [p for d in ("prefcli", "plugins") for p in (REPO / d).rglob("*.py")]
    assert shipped
    bad = []
    for p in shipped:
        text = p.read_text(encoding="utf-8")
        for m in re.finditer(r"torch\.load\(([^\n]*)", text):  # every call fits on its line here
            if "weights_only=True" not in m.group(1):
                bad.append(f"{p.relative_to(REPO)}: torch.load without weights_only=True")
        if p.name != "safe_load.py" and re.search(r"(?<!`)torch\.load\(", text):  # `quoted` in docs is fine
            bad.append(f"{p.relative_to(REPO)}: torch.load outside prefcli/safe_load.py")
        if re.search(r"pickle\.(loads?|Unpickler)\b|torch\.jit\.load|dill\.|joblib\.load|cloudpickle", text):
            bad.append(f"{p.relative_to(REPO)}: unpickling outside the restricted loader")
    assert bad == []


def test_http_weight_urls_are_refused():
    from prefcli.weights import parse

    with pytest.raises(WeightsError, match="https only"):
        parse("http://example.org/model.safetensors")
    assert parse("https://example.org/model.safetensors").kind == "url"


def test_torch_floor_excludes_the_weights_only_bypass():
    text = (REPO / "pyproject.toml").read_text()
    m = re.search(r'"torch>=([\d.]+)"', text)
    assert m and tuple(int(x) for x in m.group(1).split(".")[:2]) >= (2, 6)


# --------------------------------------------------------------------------- path confinement


def _crafted_dataset(tmp_path: Path, candidate_ids: list[str]) -> Path:
    """A minimal dataset whose tasks.parquet names `candidate_ids` as images."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from prefcli.data.dataset import pairs_schema, tasks_schema

    root = tmp_path / "ds"
    root.mkdir()
    (root / "dataset.json").write_text(json.dumps({"name": "x", "format_version": 1, "build": {"n_ref": 1}}))
    pairs = [
        {
            "pair_id": "p0",
            "user_id": "u",
            "prompt": "a",
            "liked_image_id": "aa" * 32,
            "disliked_image_id": "bb" * 32,
            "split": "test",
            "seen": False,
        }
    ]
    pq.write_table(pa.Table.from_pylist(pairs, schema=pairs_schema()), root / "pairs.parquet")
    task = {
        "task_id": "t0",
        "target_id": "t",
        "split": "test",
        "protocol": "1v1",
        "n_ref": 1,
        "user_id": "u",
        "seen": False,
        "target_pair_id": "p1",
        "history_pair_ids": ["p0"],
        "candidate_image_ids": candidate_ids,
        "candidate_prompts": ["a"] * len(candidate_ids),
        "liked_index": 0,
    }
    pq.write_table(pa.Table.from_pylist([task], schema=tasks_schema()), root / "tasks.parquet")
    return root


@pytest.mark.parametrize(
    "evil", ["../../../../../../etc/passwd", "/etc/passwd", "..", "ab/../../../etc/passwd", "ab\x00", ""]
)
def test_image_ids_cannot_name_paths_outside_the_dataset(tmp_path, evil):
    from prefcli.data.dataset import Dataset

    root = _crafted_dataset(tmp_path, [evil, "cc" * 32])
    ds = Dataset.open(root)
    with pytest.raises(DataError, match="not a plain name inside the image store"):
        ds.tasks("test", "1v1")
    with pytest.raises(DataError, match="not a plain name"):
        ds.image_path(evil)


def test_a_symlink_in_the_image_store_does_not_lead_out(tmp_path):
    from prefcli.data.dataset import Dataset, image_relpath
    from prefcli.errors import ImageError

    cid = "cc" * 32
    root = _crafted_dataset(tmp_path, [cid, "dd" * 32])
    link = root / image_relpath(cid)
    link.parent.mkdir(parents=True)
    secret = tmp_path / "secret.png"
    from PIL import Image

    Image.new("RGB", (4, 4), (200, 10, 10)).save(secret)
    link.symlink_to(secret)
    with pytest.raises(ImageError, match="links outside the dataset"):
        Dataset.open(root).open_image(cid)


def test_cli_eval_on_a_crafted_dataset_is_one_line(tmp_path, capsys):
    root = _crafted_dataset(tmp_path, ["../../../../../../etc/passwd", "cc" * 32])
    r = _run(capsys, "eval", str(root), "--scorer", "clip", "--weights", "tiny", "--split", "test", "--protocol", "1v1")
    assert r.returncode == 2 and _one_line(r.stderr) and "image store" in r.stderr, r.stderr


# --------------------------------------------------------------------------- a world elsewhere


def _world_in(folder: Path) -> Path:
    """A folder the world reader takes for a synthetic world (its world.json is all find_world looks for)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "world.json").write_text("{}")
    return folder


def _dataset_pointing_at(root: Path, location: str):
    from types import SimpleNamespace

    root.mkdir(parents=True)
    info = {"name": "x", "format_version": 1, "source": {"kind": "local", "location": location}}
    (root / "dataset.json").write_text(json.dumps(info))
    return SimpleNamespace(root=root, info=None)  # info None: find_world reads dataset.json itself


@pytest.mark.parametrize("how", ["absolute", "climbing", "link"])
def test_dataset_json_cannot_send_the_world_reader_outside_its_folder(tmp_path, monkeypatch, how):
    """source.location is read from dataset.json: a world outside the folder that holds the dataset is not followed,
    and one warning (naming dataset.json and the field) says why."""
    from prefcli.harness.world import find_world

    elsewhere = _world_in(tmp_path / "elsewhere" / "world")
    home = tmp_path / "home"
    home.mkdir()
    location = {"absolute": str(elsewhere), "climbing": "../../elsewhere/world", "link": str(home / "world-link")}[how]
    if how == "link":
        (home / "world-link").symlink_to(elsewhere)  # a name inside that leads out
    ds = _dataset_pointing_at(home / "ds", location)
    if how == "climbing":
        monkeypatch.chdir(ds.root)  # relative to the dataset or to the working folder: the same world outside
    with pytest.warns(UserWarning) as said:
        assert find_world(ds) is None
    assert len(said) == 1
    assert str(said[0].message).startswith(
        f"{home / 'ds' / 'dataset.json'}: source.location {location!r} is a world outside"
    )


@pytest.mark.parametrize("how", ["beside", "around", "relative", "link inside"])
def test_a_world_beside_or_around_its_dataset_is_followed(tmp_path, how):
    import warnings

    from prefcli.harness.world import find_world

    home = tmp_path / "home"
    world = {"beside": home / "toy-world", "around": home, "relative": home / "toy-world"}.get(how, home / "w2")
    _world_in(world)
    location = {"relative": "../toy-world"}.get(how, str(world))
    if how == "link inside":
        (home / "w-link").symlink_to(world)
        location = str(home / "w-link")
    ds = _dataset_pointing_at(home / "ds", location)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert find_world(ds) == Path(os.path.realpath(world))


def test_eval_on_a_dataset_pointing_at_a_world_elsewhere_has_no_world_rows(tmp_path, capsys, monkeypatch):
    import harness_fakes as fakes

    elsewhere = _world_in(tmp_path / "elsewhere" / "world")
    fake = fakes.FakeDataset()
    fake.root = tmp_path / "home" / "ds"
    fake.info = {**fake.info, "source": {"kind": "local", "location": str(elsewhere)}}
    with fakes.serving(monkeypatch, fake):
        code, out, err = run_cli(
            capsys,
            "eval", fake.root, "--scorer", "mock-hist", "--n-ref", "2", "--device", "cpu", "--no-cache",
            "--no-progress", "--format", "json",
        )  # fmt: skip
    assert code == 0, err
    said = [ln for ln in err.splitlines() if "source.location" in ln]
    assert len(said) == 1 and said[0].startswith("prefcli: warning: ") and "dataset.json" in said[0], err
    assert "world" not in json.loads(out)["results"]


# --------------------------------------------------------------------------- helpers


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PREFCLI_TESTING": "1"}
    env.pop("PREFCLI_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "prefcli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def _run(capsys, *args: str) -> subprocess.CompletedProcess:
    """`prefcli ARGS` in this process (tests/cli_runner.py), without a fresh interpreter importing torch again;
    `_cli` keeps a real process where a hostile archive could run code if the check failed."""
    code, out, err = run_cli(capsys, *args)
    return subprocess.CompletedProcess(args, code, out, err)


def _one_line(stderr: str) -> bool:
    """Exactly one error line, no traceback (warnings lines aside)."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip() and not ln.startswith("prefcli: warning:")]
    return len(lines) == 1 and "Traceback" not in stderr and lines[0].startswith("prefcli: error: ")
