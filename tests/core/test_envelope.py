"""prefcli/envelope.py: the one JSON document, and reading the result files earlier versions wrote."""

from __future__ import annotations

import json
import math

import pytest

from prefcli import __version__, envelope
from prefcli.errors import DataError


def test_one_scorer_or_several_never_both():
    one = envelope.envelope("rank", {"ranking": []}, scorer="clip", weights=None, revision="hf-hub:x@1", provenance={})
    assert list(one) == [
        "command",
        "prefcli_version",
        "results",
        "scorer",
        "weights",
        "revision",
        "options",
        "skipped",
        "provenance",
    ]
    many = envelope.envelope("bench", {}, scorers={"clip": {"weights": "tiny", "weights_id": "tiny:0"}}, provenance={})
    assert many["scorers"] == {"clip": {"weights": "tiny", "revision": "tiny:0"}} and "scorer" not in many
    with pytest.raises(ValueError):
        envelope.envelope("bench", {}, scorer="clip", scorers={})


def test_json_has_no_nan_and_skipped_is_item_reason():
    doc = envelope.envelope(
        "rank", {"x": math.nan, "y": (1, float("inf"))}, skipped=[("a.png", "truncated")], provenance={}
    )
    back = json.loads(envelope.dumps(doc))
    assert back["results"] == {"x": None, "y": [1, None]} and back["skipped"] == [
        {"item": "a.png", "reason": "truncated"}
    ]
    assert back["prefcli_version"] == __version__


def test_default_provenance_names_versions_commit_and_time():
    prov = envelope.envelope("data info", {}).get("provenance")
    assert prov["versions"]["prefcli"] == __version__ and prov["created"] and "argv" in prov and "git_commit" in prov


def test_old_bench_and_eval_files_are_read(tmp_path):
    runs = [{"scorer": "clip", "metrics": {"all": {}}}]
    old_bench = tmp_path / "results.json"
    old_bench.write_text(
        json.dumps(
            {
                "provenance": {
                    "scorers": {"clip": {"weights": "tiny", "weights_id": "tiny:0"}},
                    "config": {"seed": 0},
                    "versions": {"prefcli": "0.1.0"},
                    "created": "then",
                },
                "runs": runs,
                "tables": [],
            }
        )
    )
    doc = envelope.read(old_bench, "bench")
    assert doc["results"]["runs"] == runs and doc["scorers"]["clip"]["revision"] == "tiny:0"
    old_eval = tmp_path / "eval.json"
    old_eval.write_text(
        json.dumps(
            {
                "provenance": {"config": {}},
                "run": {"scorer": "clip", "weights_id": "tiny:0"},
                "tasks": [{"task_id": "t"}],
            }
        )
    )
    doc = envelope.read(old_eval, "eval")
    assert doc["scorer"] == "clip" and doc["revision"] == "tiny:0" and doc["results"]["tasks"] == [{"task_id": "t"}]
    new = tmp_path / "new.json"
    envelope.write(new, envelope.envelope("bench", {"runs": runs, "tables": []}, scorers={}, provenance={}))
    assert envelope.read(new, "bench")["results"]["runs"] == runs


def test_anything_else_is_refused_in_one_line_naming_the_version(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"provenance": {"versions": {"prefcli": "0.0.3"}}, "rows": []}))
    with pytest.raises(
        DataError, match=r"r\.json: not a prefcli bench result this version \(.+\) reads \(written by prefcli 0\.0\.3\)"
    ):
        envelope.read(p, "bench")
    p.write_text(json.dumps(envelope.envelope("eval", {}, scorer=None, provenance={})))
    with pytest.raises(DataError, match="a prefcli 'eval' result"):
        envelope.read(p, "bench")
    p.write_text("[1, 2]")
    with pytest.raises(DataError, match="a JSON list"):
        envelope.read(p, "bench")
