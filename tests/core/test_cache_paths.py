"""One cache rule for weights, scores and worlds: $PREFCLI_CACHE (XDG otherwise); PREFCLI_CACHE_DIR is a deprecated alias."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefcli import paths


def _clear(monkeypatch):
    for k in ("PREFCLI_CACHE", "PREFCLI_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(paths, "_warned", False)


def test_every_cache_hangs_off_one_root(monkeypatch, tmp_path):
    from prefcli import weights
    from prefcli.harness.cache import default_cache_dir
    from prefcli.train.loop import world_cache_dir

    _clear(monkeypatch)
    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path / "c"))
    assert weights.cache_dir() == tmp_path / "c"
    assert default_cache_dir() == tmp_path / "c" / "harness"
    assert world_cache_dir() == tmp_path / "c" / "worlds"
    monkeypatch.delenv("PREFCLI_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "prefcli" / "harness"
    assert world_cache_dir() == tmp_path / "xdg" / "prefcli" / "worlds"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert weights.cache_dir() == Path.home() / ".cache" / "prefcli"


def test_the_old_variable_still_works_with_a_warning(monkeypatch, tmp_path):
    from prefcli.harness.cache import default_cache_dir
    from prefcli.train.loop import world_cache_dir

    _clear(monkeypatch)
    monkeypatch.setenv("PREFCLI_CACHE_DIR", str(tmp_path / "old"))
    with pytest.warns(DeprecationWarning, match="PREFCLI_CACHE"):
        assert default_cache_dir() == tmp_path / "old"  # where earlier versions kept scores
    assert world_cache_dir() == tmp_path / "old" / "worlds"
    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path / "new"))  # the new rule wins when both are set
    assert default_cache_dir() == tmp_path / "new" / "harness"
