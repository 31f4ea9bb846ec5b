"""Benchmark prompt loaders: HPSv2 (4 styles x 800, upstream order and duplicates) and ImageReward."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from prefcli.cli import app
from prefcli.data.prompts import HPSV2_STYLES, load_hpsv2_prompts, load_imagereward_prompts
from prefcli.errors import DataError


def test_hpsv2_official_files(shared_data):
    prompts = load_hpsv2_prompts(shared_data / "hpsv2_benchmark")
    assert tuple(prompts) == HPSV2_STYLES
    assert all(len(v) == 800 for v in prompts.values())
    assert {s: len(set(v)) for s, v in prompts.items()} == {
        "anime": 781,
        "concept-art": 795,
        "paintings": 798,
        "photo": 800,
    }
    # Upstream indices (checked against an independent source, see SOURCE.md).
    assert prompts["anime"][57] == "A hyena fursona sitting in the grass in a savannah at sunset."
    assert prompts["photo"][165] == "Large dog looking at television show in living room."
    assert prompts["anime"][120] == prompts["anime"][326]  # duplicates kept
    only = load_hpsv2_prompts(shared_data / "hpsv2_benchmark" / "photo.json", styles=["photo"])
    assert list(only) == ["photo"] and only["photo"] == prompts["photo"]


def test_hpsv2_cli(shared_data):
    src = str(shared_data / "hpsv2_benchmark")
    res = CliRunner().invoke(app, ["data", "prompts", "--source", src, "--format", "json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert {r["style"]: r["prompts"] for r in json.loads(res.stdout)["results"]["rows"]} == {
        s: 800 for s in HPSV2_STYLES
    }
    res = CliRunner().invoke(
        app, ["data", "prompts", "--source", src, "--style", "anime", "--format", "json"], catch_exceptions=False
    )
    rows = json.loads(res.stdout)["results"]["rows"]
    assert len(rows) == 800 and rows[57]["index"] == 57 and rows[57]["prompt"].startswith("A hyena fursona")


def test_imagereward_prompts(shared_data):
    items = load_imagereward_prompts(shared_data / "imagereward_benchmark")
    assert len(items) == 100 and len({i["id"] for i in items}) == 100 and all(i["prompt"] for i in items)
    res = CliRunner().invoke(
        app,
        [
            "data",
            "prompts",
            "--set",
            "imagereward",
            "--source",
            str(shared_data / "imagereward_benchmark"),
            "--format",
            "csv",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0 and res.stdout.count("\n") == 101


def test_errors_are_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="offline"):
        load_hpsv2_prompts()
    with pytest.raises(DataError, match="offline"):
        load_imagereward_prompts()
    with pytest.raises(DataError, match="not found"):
        load_hpsv2_prompts(tmp_path / "nope")
    (tmp_path / "anime.json").write_text(json.dumps(["a", "b"]))
    with pytest.raises(DataError, match="concept-art.json"):
        load_hpsv2_prompts(tmp_path)
    assert load_hpsv2_prompts(tmp_path, styles=["anime"]) == {"anime": ["a", "b"]}
    (tmp_path / "photo.json").write_text(json.dumps({"not": "a list"}))
    with pytest.raises(DataError, match="list of prompt strings"):
        load_hpsv2_prompts(tmp_path, styles=["photo"])
    with pytest.raises(DataError, match="unknown HPSv2 style"):
        load_hpsv2_prompts(tmp_path, styles=["cartoon"])
    res = CliRunner().invoke(app, ["data", "prompts", "--source", str(tmp_path / "nope")])
    assert res.exit_code != 0
