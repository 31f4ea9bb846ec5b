"""The offline demo runs end to end and reports only what it measured."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from json_schemas import validate  # docs/schemas/: every command's JSON
from prefcli.cli import main

pytestmark = pytest.mark.slow  # end to end: `make test-fast` leaves it out, `make test` (CI) runs it


def test_demo_end_to_end_small(tmp_path, capsys):
    out = tmp_path / "demo"
    try:
        main(["demo", "--out", str(out), "--limit", "60", "--train-steps", "20", "--format", "json"])
    except SystemExit as e:
        assert e.code in (0, None)
    captured = capsys.readouterr()
    result = validate(json.loads(captured.out))["results"]
    # The N_ref sweep asks for short histories on purpose, and nothing else here is the user's to fix: no warning.
    assert "prefcli: warning" not in captured.err, captured.err
    acc = result["accuracy"]
    assert {"clip (tiny, history-free)", "clip-probe (tiny CLIP)", "population model"} <= set(acc)
    assert all(0.0 <= v <= 1.0 for v in acc.values())
    # The printed numbers are the ones in this run's bench files.
    written = validate(json.loads((out / "bench" / "results.json").read_text()))
    headline = {r["scorer"]: r for r in written["results"]["runs"] if r["n_ref"] in (None, 8)}
    assert {s: r["metrics"]["all"]["top1"]["value"] for s, r in headline.items()} == acc
    assert all(r["n_tasks"] == 60 for r in written["results"]["runs"])
    # History models run the N_ref sweep, so the N_ref figure has a curve, not a point.
    assert {r["n_ref"] for r in written["results"]["runs"] if r["scorer"] == "clip-probe (tiny CLIP)"} == {1, 2, 4, 8}
    for ext in ("png", "pdf", "svg"):
        assert (out / "bench" / f"nref_top1.{ext}").is_file()
    # The short training run logged a loss curve from this run.
    tr = result["training"]
    assert tr["steps"] > 20 and len(tr["curve"]) >= 2
    assert (out / "train" / "metrics.jsonl").is_file()
    with Image.open(result["sheet"]) as sheet:
        assert sheet.width > 200 and sheet.height > 200
    nu = result["new_user"]
    assert 1 <= nu["true_rank_of_top_pick"] <= nu["n_candidates"]
    for name in ("table1_1v1.md", "table3_seen_unseen.csv", "tables.md"):
        assert (out / "bench" / name).is_file()
