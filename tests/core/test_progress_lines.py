"""When stderr is not a terminal, progress is a plain line every few seconds (batch logs stay readable)."""

from __future__ import annotations

import io

import pytest

from prefcli.progress import PlainProgress, progress_bar, use_plain


def test_plain_progress_prints_periodic_lines_and_the_end():
    buf = io.StringIO()
    p = PlainProgress(fields={"loss": "loss", "acc": "val top-1"}, stream=buf, interval=0.0, command="train")
    with p:
        t = p.add_task("training tiny", total=4, loss="-", acc="-")
        for i in range(4):
            p.update(t, advance=1, loss=f"{1 / (i + 1):.2f}")
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("[train 1/4] training tiny · 25.0% · loss 1.00 · val top-1 - · ")
    assert lines[-1].startswith("[train 4/4] training tiny · 100.0% · loss 0.25")
    assert len(lines) == 4 and "\r" not in buf.getvalue() and "\x1b" not in buf.getvalue()


def test_plain_progress_is_quiet_between_intervals_and_when_disabled():
    buf = io.StringIO()
    p = PlainProgress(stream=buf, interval=3600, command="")
    t = p.add_task("score", total=100)
    for _ in range(99):
        p.advance(t)
    assert buf.getvalue() == ""  # not yet due
    p.advance(t)
    assert buf.getvalue().startswith("[100/100] score · 100.0%")
    quiet = io.StringIO()
    q = PlainProgress(stream=quiet, interval=0, disable=True)
    q.advance(q.add_task("x", total=1))
    assert quiet.getvalue() == ""


def test_progress_bar_chooses_plain_lines_off_a_terminal(monkeypatch):
    monkeypatch.delenv("PREFCLI_PROGRESS", raising=False)
    assert use_plain(io.StringIO())
    monkeypatch.setenv("PREFCLI_PROGRESS", "rich")
    assert not use_plain(io.StringIO())
    monkeypatch.setenv("PREFCLI_PROGRESS", "plain")
    assert isinstance(progress_bar(True), PlainProgress)


@pytest.mark.slow  # a real `python -m prefcli eval` process (its stderr a file, as under SLURM): ~7 CPU-s
def test_a_batch_run_of_bench_logs_progress_lines(tmp_path, monkeypatch):
    """`prefcli eval` with stderr redirected to a file (as under SLURM/nohup) leaves progress lines in it."""
    import subprocess
    import sys

    from prefcli.train.loop import synthetic_dataset

    world = {"preset": "opposed", "n_users": 8, "pairs_per_user": 14, "image_size": 32, "world_seed": 0, "user_seed": 3}
    build = {"n_ref": 4, "val_users": 1, "test_users": 6, "seen_frac": 0.0, "hold_out": "user", "seed": 0}
    ds = synthetic_dataset(world, build, root=tmp_path / "w")
    log = tmp_path / "job.log"
    env = {
        **__import__("os").environ,
        "PREFCLI_PROGRESS_INTERVAL": "0",
        "PREFCLI_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("PREFCLI_PROGRESS", None)
    with open(log, "w") as f:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "prefcli",
                "eval",
                str(ds),
                "--scorer",
                "clip",
                "--weights",
                "tiny",
                "--no-cache",
                "--bootstrap",
                "10",
            ],
            stderr=f,
            stdout=subprocess.DEVNULL,
            env=env,
            timeout=300,
        )
    text = log.read_text()
    assert r.returncode == 0, text
    lines = [ln for ln in text.splitlines() if ln.startswith("[eval ") and "] scoring clip" in ln]
    assert lines and "elapsed" in lines[-1] and "100.0%" in lines[-1], text
    assert "\r" not in text and "\x1b[" not in text


def test_plain_fields_take_labels_from_other_fields_and_late_numbers_are_said():
    buf = io.StringIO()
    p = PlainProgress(
        fields={"rows": "rows", "n": "{what}", "acc": ""}, stream=buf, interval=3600, command="data pickapic"
    )
    t = p.add_task("storing images (pass 2)  ", total=2, rows=0, what="images", n=0, acc="")
    p.update(t, advance=2, rows=24, n=7)
    assert buf.getvalue().startswith("[data pickapic 2/2] storing images (pass 2) · 100.0% · rows 24 · images 7 · ")
    p.update(t, acc="val top-1 0.802")  # after the last step: said once more, with the new number
    p.update(t, acc="val top-1 0.802")  # nothing new: not repeated
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2 and "· val top-1 0.802 ·" in lines[1]
