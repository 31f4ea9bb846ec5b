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

from prefcli import atomic
from prefcli.errors import PrefcliError


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PREFCLI_TESTING": "1"}
    env.pop("PREFCLI_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "prefcli", *args], capture_output=True, text=True, env=env, timeout=300, cwd=cwd)


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
    with pytest.raises(PrefcliError, match=r"out: --out is not empty and holds files prefcli did not write \(thesis.tex\).*--overwrite"):
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

    save_file({"base_model.model.model.text_model.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(2, 8)},
              str(rel / "adapter_model.safetensors"))
    return rel


def test_convert_out_existing_dir_keeps_unrelated_contents(tmp_path):
    rel = _tiny_release(tmp_path)
    out = tmp_path / "models"
    out.mkdir()
    (out / "other-model").mkdir()
    (out / "other-model" / "weights.safetensors").write_bytes(b"precious")
    before = _snapshot(out)
    r = _cli("convert", "learn-user-pref", str(rel), "--out", str(out))
    assert r.returncode == 2 and _one_line(r.stderr) and "--overwrite" in r.stderr and "other-model" in r.stderr
    assert _snapshot(out) == before
    r = _cli("convert", "learn-user-pref", str(rel), "--out", str(out), "--overwrite")
    assert r.returncode == 0, r.stderr
    assert (out / "other-model" / "weights.safetensors").read_bytes() == b"precious"
    assert (out / "pref_tokens.safetensors").is_file()
    # prefcli's own folder: converted again without --overwrite
    r = _cli("convert", "learn-user-pref", str(rel), "--out", str(tmp_path / "fresh"))
    r2 = _cli("convert", "learn-user-pref", str(rel), "--out", str(tmp_path / "fresh"))
    assert r.returncode == 0 and r2.returncode == 0, r2.stderr
