"""Every command's JSON is the one envelope and validates against its schema in docs/schemas/ (jsonschema).

Commands quick enough to run here are run here, offline, on mock scorers,
tiny models and a small synthetic world. The slow ones (demo, bench generate,
generate, a training run, analyze tokens/attention/clusters, data pamela /
synthetic-ratings / preferimg, convert) validate their documents in their own
tests with the same `json_schemas.validate`; `test_every_json_command_has_a_schema`
keeps the list of commands and schemas in step.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from PIL import Image

import harness_fakes as fakes
from cli_runner import run_cli as run
from json_schemas import SCHEMAS, schema_file, validate, validate_text
from prefcli import plugins
from prefcli.hookspecs import hookimpl
from prefcli.scorer import Scorer, ScorerSpec

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def ok(capsys, *argv) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    return out


# --- the schemas themselves -----------------------------------------------------------------


def test_every_schema_is_a_valid_draft_2020_12_schema():
    files = sorted(SCHEMAS.glob("*.schema.json"))
    assert len(files) >= 20
    for p in files:
        doc = json.loads(p.read_text())
        jsonschema.Draft202012Validator.check_schema(doc)
        assert doc["$id"] == p.name


def _json_commands() -> set[str]:
    """Every command (as typed after `prefcli`) that has a --format option."""
    import typer

    from prefcli.cli import app

    found = set()

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
        elif any("--format" in getattr(p, "opts", ()) for p in cmd.params):
            found.add(" ".join(path))

    walk(typer.main.get_command(app), [])
    from prefcli.cli.bench_generate_cmd import bench_generate_app
    from prefcli.cli.bench_images_cmd import bench_images_app

    # `bench generate` and `bench images` are routed by bench's own command class (prefcli/cli/bench_cmd.py), not a click group.
    walk(typer.main.get_command(bench_generate_app), ["bench", "generate"])
    walk(typer.main.get_command(bench_images_app), ["bench", "images"])
    return found


def test_every_json_command_has_a_schema():
    commands = _json_commands()
    assert {
        "rank",
        "eval",
        "bench",
        "bench generate",
        "bench images",
        "scorers",
        "data info",
        "train",
        "demo",
    } <= commands
    wanted = {schema_file(c).name for c in commands}
    have = {p.name for p in SCHEMAS.glob("*.schema.json")} - {"envelope.schema.json"}
    assert wanted <= have, f"commands without a schema: {sorted(wanted - have)}"
    assert have - wanted == set(), f"schemas of no command: {sorted(have - wanted)}"


def test_old_shapes_fail_the_schemas():
    """The shapes printed before the envelope: a bare list (rank), a list with aliases as a string (scorers)."""
    with pytest.raises(jsonschema.ValidationError):
        validate([{"rank": 1, "score": 0.5, "path": "a.png", "image_id": "x", "prompt": None}], "rank")
    with pytest.raises(jsonschema.ValidationError):
        validate(
            {
                "command": "bench generate",
                "prefcli_version": "0.1.0",
                "results": {"rows": [{"style": "Photo", "hpsv2 unguided se": 0.1}]},
                "scorers": {},
                "options": {},
                "skipped": [],
                "provenance": {"versions": {"prefcli": "0.1.0"}, "created": "now"},
            }
        )


# --- commands run here ----------------------------------------------------------------------


class Bright(Scorer):
    def score(self, candidates, state=None):
        return [float(sum(c.image.convert("L").getdata())) for c in candidates]


class RankMock:
    @hookimpl
    def register_scorers(self, register):
        register(ScorerSpec(name="schema-bright", factory=f"{__name__}:Bright"))


@pytest.fixture
def mocks(monkeypatch, tmp_path):
    from prefcli.harness import source

    plugin, rank = fakes.MockPlugin(), RankMock()
    plugins.register_plugin(plugin, name="schema-harness-mocks")
    plugins.register_plugin(rank, name="schema-rank-mock")
    fakes.reset()
    (tmp_path / "ds").mkdir()
    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(source, "open_dataset", lambda path: fakes.FakeDataset())
    yield
    plugins.unregister_plugin(name="schema-harness-mocks")
    plugins.unregister_plugin(name="schema-rank-mock")
    fakes.reset()


def test_rank(capsys, mocks, tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (60 * i, 60 * i, 60 * i)).save(d / f"{i}.png")
    (d / "broken.png").write_bytes(b"not an image")
    doc = validate_text(ok(capsys, "rank", d, "--scorer", "schema-bright", "--format", "json"), "rank")
    assert [Path(s["item"]).name for s in doc["skipped"]] == ["broken.png"]


def test_eval_printed_and_written(capsys, mocks, tmp_path):
    out = tmp_path / "r.json"
    validate_text(
        ok(
            capsys,
            "eval",
            tmp_path / "ds",
            "--scorer",
            "mock-free",
            "--protocol",
            "1v3",
            "--no-progress",
            "--bootstrap",
            "10",
            "--no-cache",
            "--out",
            out,
            "--format",
            "json",
        ),
        "eval",
    )
    saved = validate(json.loads(out.read_text()), "eval")
    assert len(saved["results"]["tasks"]) == 18


def test_bench_printed_and_written_and_analyze_history(capsys, mocks, tmp_path):
    out = tmp_path / "b"
    validate_text(
        ok(
            capsys,
            "bench",
            tmp_path / "ds",
            "--scorers",
            "mock-free,mock-hist",
            "--n-ref",
            "2,4",
            "--protocols",
            "1v1",
            "--out",
            out,
            "--no-cache",
            "--no-progress",
            "--bootstrap",
            "10",
            "--format",
            "json",
        ),
        "bench",
    )
    validate(json.loads((out / "results.json").read_text()), "bench")
    doc = validate_text(
        ok(capsys, "analyze", "history", out / "results.json", "--out", tmp_path / "h", "--format", "json"),
        "analyze history",
    )
    assert doc["results"]["n_refs"] == [2, 4]
    validate(json.loads((tmp_path / "h" / "history.json").read_text()), "analyze history")


def test_scorers_list_and_one(capsys):
    doc = validate_text(ok(capsys, "scorers", "--format", "json"), "scorers")
    assert all(isinstance(r["aliases"], list) for r in doc["results"]["rows"])
    validate_text(ok(capsys, "scorers", "hpsv2", "--format", "json"), "scorers")


def test_weights_ls_pull_rm(capsys, tmp_path, monkeypatch):
    """Offline, with one URL download in prefcli's cache: ls lists it, pull finds it here, rm removes it."""
    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    from prefcli import weights

    url = "https://example.org/w/head.pth"
    target = weights.url_target(weights.parse(url), None)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"abc")
    weights.resolve_file(url, offline=True)
    doc = validate_text(ok(capsys, "weights", "ls", "--format", "json"), "weights ls")
    assert {"spec": url, "state": "cached", "size_bytes": 3}.items() <= next(
        r for r in doc["results"]["rows"] if r["spec"] == url
    ).items()
    validate_text(ok(capsys, "weights", "pull", url, "tiny", "--format", "json"), "weights pull")
    doc = validate_text(ok(capsys, "weights", "rm", url, "--yes", "--format", "json"), "weights rm")
    assert doc["results"]["rows"][0]["action"] == "removed" and not target.exists()


def test_train_list_and_dry_run(capsys):
    validate_text(ok(capsys, "train", "--list", "--format", "json"), "train")
    doc = validate_text(ok(capsys, "train", "--config", "tiny-cpu-cp", "--dry-run", "--format", "json"), "train")
    assert doc["options"]["dry_run"] is True


@pytest.mark.skipif(not (SHARED / "hpsv2_benchmark").is_dir(), reason="the shared HPSv2 prompt folder is not here")
def test_data_prompts(capsys):
    validate_text(
        ok(capsys, "data", "prompts", "--source", SHARED / "hpsv2_benchmark", "--format", "json"), "data prompts"
    )


def test_data_synthetic_pickapic_info(capsys, tmp_path):
    world, ds = tmp_path / "w", tmp_path / "ds"
    validate_text(
        ok(
            capsys,
            "data",
            "synthetic",
            "--out",
            world,
            "--users",
            "12",
            "--pairs-per-user",
            "12",
            "--image-size",
            "16",
            "--prompts",
            "4",
            "--images-per-prompt",
            "6",
            "--preset",
            "opposed",
            "--no-progress",
            "--format",
            "json",
        ),
        "data synthetic",
    )
    validate_text(
        ok(
            capsys,
            "data",
            "pickapic",
            "--source",
            world,
            "--out",
            ds,
            "--n-ref",
            "4",
            "--min-liked",
            "6",
            "--val-users",
            "2",
            "--test-users",
            "4",
            "--no-progress",
            "--format",
            "json",
        ),
        "data pickapic",
    )
    doc = validate_text(ok(capsys, "data", "info", ds, "--format", "json"), "data info")
    assert doc["scorer"] is None and doc["results"]["splits"][0]["split"] == "train"
    # One table per CSV: the splits, or the build parameters with --table build (before: both, one after the other).
    code, out, err = run(capsys, "data", "info", ds, "--format", "csv")
    assert code == 0 and out.splitlines()[0].startswith("split,") and "key,value" not in out and "--table NAME" in err
    code, out, err = run(capsys, "data", "info", ds, "--format", "csv", "--table", "build")
    assert code == 0 and out.splitlines()[0] == "key,value" and "split," not in out


# --- one table per CSV ----------------------------------------------------------------------


def test_bench_csv_prints_one_table_and_table_picks_another(capsys, mocks, tmp_path):
    """Before: four unnamed tables, one after another, separated by blank lines."""
    import csv
    import io

    base = (
        "bench",
        tmp_path / "ds",
        "--scorers",
        "mock-free",
        "--protocols",
        "1v1,1v3",
        "--out",
        tmp_path / "b",
        "--no-cache",
        "--no-progress",
        "--bootstrap",
        "10",
    )
    code, out, err = run(capsys, *base, "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert out.count("\n\n") == 0 and {"scorer", "top1"} <= set(rows[0]) and all(len(r) == len(rows[0]) for r in rows)
    assert "one table per CSV" in err and "table2_1v3" in err and "--table NAME" in err
    assert out == (tmp_path / "b" / "table1_1v1.csv").read_text()  # the main table, as --out wrote it
    code, out, err = run(capsys, *base, "--format", "csv", "--table", "table2_1v3")
    assert code == 0, err
    assert out == (tmp_path / "b" / "table2_1v3.csv").read_text() and "top3" in out.splitlines()[0]
    code, out, err = run(capsys, *base, "--format", "csv", "--table", "nope")
    assert code == 2 and "--table nope: no such table here; choose from table1_1v1, table2_1v3" in err


def test_demo_csv_prints_one_table(capsys, monkeypatch, tmp_path):
    """The demo prints Table 1 and Table 3: as CSV, one of them (run_demo itself is test_demo's)."""
    import prefcli.demo
    from prefcli.harness.tables import Column, Table

    tabs = [
        Table("table1_1v1", "Table 1", [Column("scorer", "scorer")], [{"scorer": "a"}]),
        Table("table3_seen_unseen", "Table 3", [Column("gap", "gap")], [{"gap": 0.1}]),
    ]
    monkeypatch.setattr(prefcli.demo, "run_demo", lambda cfg, log: {"tables": tabs})
    code, out, err = run(capsys, "demo", "--out", tmp_path, "--format", "csv")
    assert code == 0 and out == "scorer\na\n" and "table3_seen_unseen" in err
    code, out, err = run(capsys, "demo", "--out", tmp_path, "--format", "csv", "--table", "table3_seen_unseen")
    assert code == 0 and out == "gap\n0.1\n"
