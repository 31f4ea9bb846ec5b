"""`prefcli scorers` says where each scorer's default weights are, never "runs here: yes" on a machine without them."""

from __future__ import annotations

import json

import pytest

from cli_runner import run_cli as run
from prefcli import plugins
from prefcli.hookspecs import hookimpl
from prefcli.scorer import ScorerSpec
from prefcli.weights_here import availability


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path / "prefcli"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def _rows(capsys) -> dict[str, dict]:
    code, out, err = run(capsys, "scorers", "--format", "json")
    assert code == 0, err
    return {r["name"]: r for r in json.loads(out)["results"]["rows"]}


def test_offline_without_weights_nothing_runs_here(capsys, empty_caches):
    """Before: "runs here: yes" for all 13 scorers on a machine with no network and none of their weights."""
    rows = _rows(capsys)
    assert rows["clip"]["weights_here"] == "download" and rows["clip"]["runs_here"] == "no (offline)"
    assert rows["aesthetic"]["weights_here"] == "download"
    assert rows["preftoken"]["weights_here"] == "none" and rows["preftoken"]["runs_here"] == "with --weights"
    assert not any(r["runs_here"] == "yes" for r in rows.values()), {n: r["runs_here"] for n, r in rows.items()}
    assert rows["clip"]["weights_where"] == "hf download openai/clip-vit-large-patch14"


def test_a_cached_snapshot_is_found(capsys, empty_caches):
    snap = empty_caches / "hf" / "models--openai--clip-vit-large-patch14" / "snapshots" / "0123abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("0123abc")
    rows = _rows(capsys)
    assert rows["clip"]["weights_here"] == "cached" and rows["clip"]["weights_where"] == str(snap)
    assert rows["clip"]["runs_here"] == ("yes" if rows["clip"]["installed"] else "no")
    assert rows["pickscore"]["weights_here"] == "download"  # another repository is still missing
    code, table, _ = run(capsys, "scorers")
    assert "cached" in table


def test_an_empty_snapshot_folder_is_not_weights(empty_caches):
    (empty_caches / "hf" / "models--org--name" / "snapshots" / "abc").mkdir(parents=True)
    assert availability("org/name").state == "download"


def test_a_url_download_in_prefcli_cache_is_found(empty_caches):
    from prefcli import weights

    url = "https://example.org/w/head.pth"
    assert availability(url).state == "download"
    target = weights.url_target(weights.parse(url), "ab" * 32)  # a scorer that pins the sha256 keys the folder by it
    target.parent.mkdir(parents=True)
    target.write_bytes(b"x")
    assert availability(url).state == "cached"


class LocalDefault:
    def __init__(self, path):
        self.path = path

    @hookimpl
    def register_scorers(self, register):
        register(ScorerSpec(name="local-default", factory="x:Y", default_weights=str(self.path)))
        register(ScorerSpec(name="tiny-default", factory="x:Y", default_weights="tiny"))


def test_local_and_built_in_defaults(capsys, empty_caches):
    (empty_caches / "w.safetensors").write_bytes(b"x")
    plugin = LocalDefault(empty_caches / "w.safetensors")
    plugins.register_plugin(plugin, name="weights-here-mock")
    try:
        rows = _rows(capsys)
    finally:
        plugins.unregister_plugin(plugin)
    assert rows["local-default"]["weights_here"] == "local" and rows["local-default"]["runs_here"] == "yes"
    assert rows["tiny-default"]["weights_here"] == "built-in"
