"""The offline demo runs end to end on a small world and reports what it measured."""

from __future__ import annotations

import json

from PIL import Image

from prefcli.cli import main


def test_demo_small_world_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    try:
        main(["demo", "--out", str(out), "--users", "30", "--format", "json"])
    except SystemExit as e:
        assert e.code in (0, None)
    result = json.loads(capsys.readouterr().out)
    acc = result["accuracy"]
    assert set(acc) == {"clip", "clip-probe"}
    assert all(0.0 <= v <= 1.0 for v in acc.values())
    # The numbers come from the bench files written in this run.
    written = json.loads((out / "bench" / "results.json").read_text())
    measured = {r["scorer"]: r["metrics"]["all"]["top1"]["value"] for r in written["runs"]}
    assert measured == acc
    with Image.open(result["sheet"]) as sheet:
        assert sheet.width > 200 and sheet.height > 200
    nu = result["new_user"]
    assert 1 <= nu["true_rank_of_top_pick"] <= nu["n_candidates"]
    for name in ("table1_1v1.md", "table3_seen_unseen.csv", "tables.md"):
        assert (out / "bench" / name).is_file()
