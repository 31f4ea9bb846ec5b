"""Hostile files, part 2: prefcli never loses data - nothing it did not write is deleted,
every swap is recoverable, every leftover of a killed run is cleaned on the next one.

Inputs are built at test time. Each test plants files prefcli did not write and
checks they are byte-identical afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cli_runner import run_cli
from prefcli import atomic
from prefcli.errors import PrefcliError


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PREFCLI_TESTING": "1"}
    env.pop("PREFCLI_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "prefcli", *args], capture_output=True, text=True, env=env, timeout=300, cwd=cwd
    )


def _run(capsys, *args: str) -> subprocess.CompletedProcess:
    """`prefcli ARGS` in this process (no fresh interpreter importing torch each time); `_cli` where a
    second real process is the point (locks, the parent's pid)."""
    code, out, err = run_cli(capsys, *args)
    return subprocess.CompletedProcess(args, code, out, err)


def _one_line(stderr: str) -> bool:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip() and not ln.startswith("prefcli: warning:")]
    return len(lines) == 1 and "Traceback" not in stderr and lines[0].startswith("prefcli: error: ")


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- replace_dir / markers


def _finished(tmp_parent: Path, files: dict[str, str]) -> Path:
    t = tmp_parent / f".new.{os.getpid()}.x.tmp"
    t.mkdir()
    for k, v in files.items():
        (t / k).parent.mkdir(parents=True, exist_ok=True)
        (t / k).write_text(v)
    return t


def test_replace_dir_refuses_a_folder_with_files_prefcli_did_not_write(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    before = _snapshot(out)
    with pytest.raises(
        PrefcliError, match=r"out: --out is not empty and holds files prefcli did not write \(thesis.tex\).*--overwrite"
    ):
        atomic.replace_dir(_finished(tmp_path, {"a.json": "1"}), out, by="test")
    assert _snapshot(out) == before


def test_overwrite_writes_in_and_keeps_the_other_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    atomic.replace_dir(_finished(tmp_path, {"a.json": "1", "sub/b.bin": "2"}), out, by="test", overwrite=True)
    assert (out / "thesis.tex").read_text() == "years of work" and (out / "a.json").read_text() == "1"
    assert atomic.written_by_prefcli(out) == {"a.json", "sub/b.bin"}
    # the next run replaces only prefcli's files: b.bin is gone (prefcli wrote it), thesis.tex stays
    atomic.replace_dir(_finished(tmp_path, {"a.json": "3"}), out, by="test", overwrite=True)
    assert (out / "thesis.tex").read_text() == "years of work" and (out / "a.json").read_text() == "3"
    assert not (out / "sub" / "b.bin").exists()


def test_a_folder_prefcli_wrote_is_replaced_atomically(tmp_path):
    out = tmp_path / "out"
    atomic.replace_dir(_finished(tmp_path, {"a.json": "1"}), out, by="test")
    atomic.replace_dir(_finished(tmp_path, {"b.json": "2"}), out, by="test")
    assert sorted(p.name for p in out.iterdir()) == [atomic.MARKER, "b.json"]
    # ...but a file the user added since makes it theirs too
    (out / "notes.txt").write_text("mine")
    with pytest.raises(PrefcliError, match="notes.txt"):
        atomic.replace_dir(_finished(tmp_path, {"c.json": "3"}), out, by="test")
    assert (out / "notes.txt").read_text() == "mine"


def test_a_kill_between_the_two_renames_is_recovered(tmp_path, monkeypatch):
    out = tmp_path / "out"
    atomic.replace_dir(_finished(tmp_path, {"a.json": "old"}), out, by="test")
    real = os.replace
    calls = []

    def dying(a, b):
        calls.append((a, b))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the kill: after out -> .out.old, before tmp -> out
        return real(a, b)

    monkeypatch.setattr(atomic.os, "replace", dying)
    with pytest.raises(KeyboardInterrupt):
        atomic.replace_dir(_finished(tmp_path, {"a.json": "new"}), out)
    monkeypatch.setattr(atomic.os, "replace", real)
    assert not out.exists() and (tmp_path / ".out.old").is_dir()
    atomic.recover_dir(out)  # what the next run does first
    assert (out / "a.json").read_text() == "old" and not (tmp_path / ".out.old").exists()


def test_leftover_work_folders_of_dead_runs_are_cleaned_and_live_ones_kept(tmp_path):
    out = tmp_path / "out"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (tmp_path / f".out.{dead_pid}.abc.tmp").mkdir()
    (tmp_path / f".out.{os.getppid()}.abc.tmp").mkdir()  # a live process (our parent)
    (tmp_path / ".unrelated.tmp").mkdir()
    atomic.clean_leftovers(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f".out.{os.getppid()}.abc.tmp", ".unrelated.tmp"])


# --------------------------------------------------------------------------- convert --out


def _tiny_release(tmp_path: Path) -> Path:
    rel = tmp_path / "rel"
    rel.mkdir()
    torch.save({"prompt": torch.rand(10, 8)}, rel / "prompt_pool.pt")
    (rel / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 2}))
    from safetensors.torch import save_file

    save_file(
        {"base_model.model.model.text_model.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(2, 8)},
        str(rel / "adapter_model.safetensors"),
    )
    return rel


def test_convert_out_existing_dir_keeps_unrelated_contents(tmp_path, capsys):
    rel = _tiny_release(tmp_path)
    out = tmp_path / "models"
    out.mkdir()
    (out / "other-model").mkdir()
    (out / "other-model" / "weights.safetensors").write_bytes(b"precious")
    before = _snapshot(out)
    r = _run(capsys, "convert", "learn-user-pref", str(rel), "--out", str(out))
    assert r.returncode == 2 and _one_line(r.stderr) and "--overwrite" in r.stderr and "other-model" in r.stderr
    assert _snapshot(out) == before
    r = _run(capsys, "convert", "learn-user-pref", str(rel), "--out", str(out), "--overwrite")
    assert r.returncode == 0, r.stderr
    assert (out / "other-model" / "weights.safetensors").read_bytes() == b"precious"
    assert (out / "pref_tokens.safetensors").is_file()
    # prefcli's own folder: converted again without --overwrite
    r = _run(capsys, "convert", "learn-user-pref", str(rel), "--out", str(tmp_path / "fresh"))
    r2 = _run(capsys, "convert", "learn-user-pref", str(rel), "--out", str(tmp_path / "fresh"))
    assert r.returncode == 0 and r2.returncode == 0, r2.stderr


# --------------------------------------------------------------------------- data synthetic


def test_user_folders_never_delete_pictures_prefcli_did_not_write(tmp_path, capsys):
    d = tmp_path / "alice"
    (d / "liked").mkdir(parents=True)
    (d / "liked" / "my-cat.png").write_bytes(b"\x89PNG not really, but mine")
    (d / "candidates").mkdir()
    (d / "candidates" / "000.png").write_bytes(b"mine too")
    before = _snapshot(d)
    args = ["data", "synthetic", "--user-folders", str(d), "--history", "2", "--candidates", "2", "--image-size", "16"]
    r = _run(capsys, *args)
    assert r.returncode == 2 and _one_line(r.stderr) and "--overwrite" in r.stderr and "liked/my-cat.png" in r.stderr
    assert _snapshot(d) == before
    r = _run(capsys, *args, "--overwrite")
    assert r.returncode == 0, r.stderr
    assert (d / "liked" / "my-cat.png").read_bytes() == b"\x89PNG not really, but mine"
    # prefcli's own folders are rewritten freely, and only prefcli's files go
    e = tmp_path / "bob"
    args = ["data", "synthetic", "--user-folders", str(e), "--candidates", "2", "--image-size", "16"]
    assert _run(capsys, *args, "--history", "3").returncode == 0
    r = _run(capsys, *args, "--history", "1")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (e / "liked").iterdir()) == ["000.png"]


def test_a_world_over_a_folder_of_someone_elses_shards_is_refused(tmp_path, capsys):
    out = tmp_path / "w"
    out.mkdir()
    (out / "shard-00000.parquet").write_bytes(b"someone's data")
    r = _run(capsys, "data", "synthetic", "--out", str(out), "--no-progress")
    assert r.returncode == 2 and _one_line(r.stderr) and "did not write" in r.stderr
    assert (out / "shard-00000.parquet").read_bytes() == b"someone's data"


# --------------------------------------------------------------------------- the Pick-a-Pic builder


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from _pickapic_fixture import write_shards

    d = tmp_path_factory.mktemp("pap") / "shards"
    write_shards(d)
    return d


def _pickapic_args(source: Path, out: Path) -> tuple[str, ...]:
    """`prefcli data pickapic` over the fixture shards with the small build `_params` makes."""
    return ("data", "pickapic", "--source", str(source), "--out", str(out), "--n-ref", "4", "--min-liked", "10",
            "--val-users", "2", "--test-users", "4", "--no-progress")  # fmt: skip


def _params():
    from prefcli.data import pickapic

    return pickapic.BuildParams(n_ref=4, min_liked=10, val_users=2, test_users=4, seen_test_frac=0.4, name="fixture")


def test_disk_full_while_writing_a_part_is_a_failure_to_retry_not_a_bad_shard(shards, tmp_path, monkeypatch):
    import errno

    from prefcli.data import importing, pickapic
    from prefcli.data.dataset import Dataset
    from prefcli.errors import DataError

    real = importing.ImageStore.put
    n = {"calls": 0}

    def full(self, cid, data):
        n["calls"] += 1
        if n["calls"] == 30:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.root / "images" / cid[:2] / cid))
        return real(self, cid, data)

    monkeypatch.setattr(importing.ImageStore, "put", full)
    out = tmp_path / "ds"
    with pytest.raises(DataError, match=r"No space left on device.*rerun the same command to resume"):
        pickapic.build(str(shards), out, _params(), progress=False)
    journal = json.loads((tmp_path / "ds.partial" / ".work" / "progress.json").read_text())
    assert all(e["status"] == "ok" for e in journal["pass2"].values())  # nothing marked bad
    monkeypatch.setattr(importing.ImageStore, "put", real)
    res = pickapic.build(str(shards), out, _params(), progress=False)
    ref = pickapic.build(str(shards), tmp_path / "ref", _params(), progress=False)
    assert res.info["source_stats"]["shards_skipped"] == 0
    assert (
        len(Dataset.open(out).pairs())
        == len(Dataset.open(tmp_path / "ref").pairs())
        == ref.info["counts"]["splits"]["train"]["pairs"]
        + ref.info["counts"]["splits"]["val"]["pairs"]
        + ref.info["counts"]["splits"]["test"]["pairs"]
    )


def test_a_shard_missing_a_column_is_reported_with_shard_and_column(shards, tmp_path, capsys):
    import shutil

    import pyarrow.parquet as pq

    src = tmp_path / "src"
    shutil.copytree(shards, src)
    victim = sorted(src.glob("*.parquet"))[1]
    t = pq.read_table(victim)
    pq.write_table(t.drop_columns(["jpg_1"]), victim)
    out = tmp_path / "ds"
    r = _run(capsys, *_pickapic_args(src, out), "--format", "json")
    assert r.returncode == 0, r.stderr
    problems = json.loads((out / "dataset.json").read_text())["problems"]
    assert any(p["shard"] == victim.name and "jpg_1" in p["reason"] for p in problems)
    assert victim.name in r.stderr and "jpg_1" in r.stderr


def test_a_resume_over_changed_sources_is_refused(shards, tmp_path, monkeypatch):
    import shutil

    from prefcli.data import pickapic
    from prefcli.errors import DataError

    src = tmp_path / "src"
    shutil.copytree(shards, src)

    def crash(phase, i):
        if phase == "pass1" and i == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(pickapic, "_after_shard", crash)
    with pytest.raises(KeyboardInterrupt):
        pickapic.build(str(src), tmp_path / "ds", _params(), progress=False)
    monkeypatch.setattr(pickapic, "_after_shard", None)
    a, b = sorted(src.glob("*.parquet"))[:2]
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)  # the shards swapped under the build
    b.write_bytes(da)
    with pytest.raises(DataError, match=rf"{a.name}: the shard changed since the unfinished build read it"):
        pickapic.build(str(src), tmp_path / "ds", _params(), progress=False)
    a.write_bytes(da)
    b.write_bytes(db)
    assert (
        pickapic.build(str(src), tmp_path / "ds", _params(), progress=False).info["source_stats"]["shards_skipped"] == 0
    )


def test_a_killed_finalize_leaves_no_tmp_files_in_the_finished_dataset(shards, tmp_path, monkeypatch):
    from prefcli.data import pickapic

    real = pickapic._finalize

    def killed(work_root, *a, **kw):
        (work_root / ".pairs.parquet.abc123.tmp").write_bytes(b"half")  # what a kill inside atomic_path leaves
        (work_root / "images").mkdir(exist_ok=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(pickapic, "_finalize", killed)
    with pytest.raises(KeyboardInterrupt):
        pickapic.build(str(shards), tmp_path / "ds", _params(), progress=False)
    monkeypatch.setattr(pickapic, "_finalize", real)
    pickapic.build(str(shards), tmp_path / "ds", _params(), progress=False)
    assert [p for p in (tmp_path / "ds").rglob("*.tmp")] == []


def test_two_builds_of_one_out_the_second_says_who_holds_it(shards, tmp_path):
    import socket

    from prefcli.lock import lock_path

    out = tmp_path / "ds"
    lock = lock_path(out)
    lock.write_text(
        json.dumps(
            {
                "pid": os.getppid(),
                "host": socket.gethostname(),
                "started": "2026-12-01T10:00:00+00:00",
                "command": "prefcli data pickapic --out ds",
            }
        )
    )
    r = _cli(*_pickapic_args(shards, out))
    assert r.returncode == 2 and _one_line(r.stderr), r.stderr
    assert f"pid {os.getppid()} on {socket.gethostname()}" in r.stderr and "2026-12-01T10:00:00" in r.stderr
    assert not out.exists() and not (tmp_path / "ds.partial").exists()
    # a stale lock (its process is gone) is taken over
    dead = int(
        subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    )
    lock.write_text(json.dumps({"pid": dead, "host": socket.gethostname(), "started": "x", "command": "killed"}))
    r = _cli(*_pickapic_args(shards, out))
    assert r.returncode == 0, r.stderr
    assert (out / "dataset.json").is_file() and not lock.exists()


def test_a_real_second_process_is_refused_while_the_first_holds_the_lock(tmp_path):
    from prefcli.lock import LockedError, output_lock

    out = tmp_path / "run"
    code = (
        "import sys, time; from prefcli.lock import output_lock\n"
        "with output_lock(sys.argv[1], command='first'):\n    print('held', flush=True); time.sleep(30)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=rf"pid {p.pid} on .*: first"):
            with output_lock(out):
                pass
    finally:
        p.kill()
        p.wait()
    with output_lock(out):  # the killed holder's lock is stale now
        pass


# --------------------------------------------------------------------------- bench, training


def test_a_killed_bench_over_an_existing_out_keeps_the_old_tables_whole(tmp_path, monkeypatch):
    from prefcli.harness import bench, results

    out = tmp_path / "bench"
    out.mkdir()
    (out / "README.txt").write_text("my notes")
    runs = []  # no runs: the tables are empty but every file is still written
    bench.write_outputs(runs, {"run": 1}, out)
    old = _snapshot(out)
    real = results.write_json

    def killed(path, obj):
        raise KeyboardInterrupt  # after every table of the new run was written, before results.json

    monkeypatch.setattr(results, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        bench.write_outputs(runs, {"run": 2}, out)
    monkeypatch.setattr(results, "write_json", real)
    assert _snapshot(out) == old
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    bench.write_outputs(runs, {"run": 3}, out)
    assert json.loads((out / "results.json").read_text())["provenance"] == {"run": 3}
    assert (out / "README.txt").read_text() == "my notes"


def test_metrics_rewrite_on_resume_is_atomic_and_drops_a_half_written_line(tmp_path, monkeypatch):
    from prefcli.train.common import MetricsLog, kept_metrics

    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in range(1, 7)]
    path.write_text("\n".join(lines) + '\n{"step": 7, "lo')  # killed while writing line 7
    assert kept_metrics(path, 4) == lines[:4]
    before = path.read_bytes()

    def killed(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", killed)  # a kill during the rewrite
    with pytest.raises(KeyboardInterrupt):
        MetricsLog(path, True, 4)
    monkeypatch.undo()
    assert path.read_bytes() == before  # the history is whole, not truncated
    MetricsLog(path, True, 4)
    assert path.read_text().splitlines() == lines[:4]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]


def test_a_checkpoint_resaved_over_itself_survives_a_kill_mid_swap(tmp_path, monkeypatch):
    from prefcli.train import checkpoint as ck

    root = tmp_path / "checkpoints"
    final = root / ck.checkpoint_name(5)
    final.mkdir(parents=True)
    (final / ck.STATE_FILE).write_text(json.dumps({"step": 5}))
    old = root / ".step-00000005.old"
    os.replace(final, old)  # what a kill between replace_dir's two renames leaves
    assert [p.name for p in ck.list_checkpoints(root)] == ["step-00000005"]
    assert ck.read_state(final)["step"] == 5 and not old.exists()
