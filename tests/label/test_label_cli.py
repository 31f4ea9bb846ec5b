"""`prefcli label` on the command line: the URL, one-line errors, the missing extra, and a fast --help."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cli_runner import run_cli
from label_fixtures import make_pool


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path / "cache"))


def test_help_does_not_import_the_server_stack():
    code = (
        "import sys, prefcli.cli; from prefcli.cli import app; "
        "heavy = [m for m in ('starlette', 'uvicorn', 'torch', 'prefcli.label.server') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_command_prints_the_url_serves_the_pool_and_writes_the_folders(tmp_path, capsys, monkeypatch):
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.testclient import TestClient

    import prefcli.label.server as server

    pool = make_pool(tmp_path / "pool")
    (tmp_path / "pool" / "a circle" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")

    def fake_serve(app, sock):  # answer two pairs through the real app, then stop as Ctrl-C would
        c = TestClient(app)
        token = fake_serve.token
        for choice in ("left", "right"):
            v = c.get("/api/state", headers={"X-Prefcli-Token": token}).json()
            c.post(
                "/api/answer", headers={"X-Prefcli-Token": token}, json={"pair": v["pair"]["token"], "choice": choice}
            )

    real_url_of = server.url_of

    def url_of(sock, host, token):
        fake_serve.token = token
        return real_url_of(sock, host, token)

    monkeypatch.setattr(server, "serve", fake_serve)
    monkeypatch.setattr(server, "url_of", url_of)
    code, out, err = run_cli(
        capsys,
        "label",
        pool,
        "--out",
        tmp_path / "me",
        "--weights",
        "tiny",
        "--device",
        "cpu",
        "--pairs",
        "8",
        "--user",
        "me",
    )
    assert code == 0, err
    assert out.startswith("label at http://127.0.0.1:") and "/?token=" in out
    assert "skipped" in err and "broken.png" in err
    assert "wrote" in err and "2 liked/disliked pair(s)" in err
    recs = [json.loads(ln) for ln in (tmp_path / "me" / "labels.jsonl").read_text().splitlines()]
    assert [r["choice"] for r in recs] == ["left", "right"] and recs[0]["scorer"].startswith("clip-probe")


def test_a_non_loopback_host_says_who_can_label(tmp_path, capsys, monkeypatch):
    pytest.importorskip("starlette")
    import prefcli.label.server as server

    monkeypatch.setattr(server, "serve", lambda app, sock: None)
    code, out, err = run_cli(
        capsys,
        "label",
        make_pool(tmp_path / "pool"),
        "--out",
        tmp_path / "me",
        "--weights",
        "tiny",
        "--device",
        "cpu",
        "--host",
        "0.0.0.0",
    )
    assert code == 0, err
    assert "not the loopback address: anyone who can reach this machine" in err and "has the token" in err


def test_bad_input_is_one_line(tmp_path, capsys):
    code, out, err = run_cli(capsys, "label", tmp_path / "nowhere", "--out", tmp_path / "me")
    assert code == 2 and err.count("\n") == 1 and "nowhere" in err and "Traceback" not in err
    pool = make_pool(tmp_path / "pool")
    (tmp_path / "me" / "liked").mkdir(parents=True)
    (tmp_path / "me" / "liked" / "x.png").write_bytes(b"mine")
    code, out, err = run_cli(capsys, "label", pool, "--out", tmp_path / "me", "--weights", "tiny")
    assert code == 2 and "liked/x.png" in err and err.startswith("prefcli: error:")
    assert (tmp_path / "me" / "liked" / "x.png").read_bytes() == b"mine"


def test_a_missing_extra_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import fails as if not installed
    code, out, err = run_cli(capsys, "label", make_pool(tmp_path / "pool"), "--out", tmp_path / "me")
    assert code == 2 and "pip install 'prefcli[label]'" in err and err.count("\n") == 1


def test_the_pool_is_embedded_once_and_then_read_from_the_cache(tmp_path, monkeypatch):
    import numpy as np

    import prefcli.label.embed as embed
    from prefcli.label.pool import load_pool

    pool = load_pool(make_pool(tmp_path / "pool"))
    first, scorer = embed.embed_pool(pool, "clip-probe", "tiny", "cpu", cache_dir=tmp_path / "c", progress=False)
    assert first.shape[0] == len(pool.images) and scorer.startswith("clip-probe")

    def no_reading(path):
        raise AssertionError(f"read {path} again")

    monkeypatch.setattr(embed, "_load", no_reading)
    again, _ = embed.embed_pool(pool, "clip-probe", "tiny", "cpu", cache_dir=tmp_path / "c", progress=False)
    assert np.array_equal(first, again)
    with pytest.raises(Exception, match="per-person probe"):
        embed.embed_pool(pool, "aesthetic", "tiny", "cpu", cache_dir=tmp_path / "c", progress=False)
