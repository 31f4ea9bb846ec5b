"""`prefcli data preferimg`: a PreferImg-Bench subset in its published format becomes a dataset.

The fixture is written here in the format eval_PreferThinker.py reads
(github.com/Shengqi77/PreferThinker, eval_PreferThinker.py at 4cdc1ef):
a JSON list (`json.load`), per record `prefered_images` / `non_prefered_images`
(kept `[:num_history]`, lines 199-200 of that file), `imageA`, `imageB` (paths
joined to `--image_root`) and the answer in `conversations[0]['value']`
(`ground_truth = input_example['conversations'][0]['value']`), laid out as the
README's example run: data/PICKAPIC/PICKAPIC.json beside data/PICKAPIC/images/.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

import harness_fakes as fakes
from json_schemas import validate  # docs/schemas/: every command's JSON
from prefcli import plugins
from prefcli.cli import app
from prefcli.data import importing, preferimg
from prefcli.data.dataset import TASKS_V2_COLUMNS, Dataset
from prefcli.errors import DataError


def _png(seed: int) -> bytes:
    import numpy as np

    rng = np.random.default_rng(seed)
    arr = rng.integers(30, 225, (12, 12, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def write_benchmark(root: Path, n_good: int = 10) -> dict:
    """A TEST_PICKAPIC subset in the published layout; returns what a correct import must yield."""
    sub = root / "data" / "PICKAPIC"
    img = sub / "images"
    img.mkdir(parents=True)
    seed = iter(range(10_000))

    def image(name: str) -> str:
        (img / name).write_bytes(_png(next(seed)))
        return name

    records, expected = [], []
    for i in range(n_good):
        liked = [image(f"u{i}_pref_{j}.png") for j in range(6 if i % 2 else 3)]  # unequal on purpose
        disliked = [image(f"u{i}_non_{j}.png") for j in range(2 if i % 3 else 7)]
        a, b = image(f"u{i}_A.png"), image(f"u{i}_B.png")
        answer = "Image A" if i % 4 in (0, 3) else "Image B"
        records.append(
            {
                "user_id": f"pickapic-user-{i // 2}",
                "prefered_images": liked,
                "non_prefered_images": disliked,
                "imageA": a,
                "imageB": b,
                "conversations": [{"from": "gpt", "value": answer}],
            }
        )
        expected.append(
            {
                "index": i,
                "liked_index": 0 if answer == "Image A" else 1,
                "n_liked": len(liked),
                "n_disliked": len(disliked),
            }
        )
    shared = image("shared_history.png")  # one image in two histories: stored once
    records[0]["prefered_images"].append(shared)
    expected[0]["n_liked"] += 1
    records[1]["non_prefered_images"].insert(0, shared)
    expected[1]["n_disliked"] += 1
    bad_history = "broken_history.png"
    (img / bad_history).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    records[2]["prefered_images"].insert(0, bad_history)
    expected[2]["n_liked"] += 1
    expected[2]["broken_liked"] = 1
    # Bad records, each skipped and reported.
    records.append({**records[3], "conversations": [{"from": "gpt", "value": "Image C"}]})
    records.append({k: v for k, v in records[3].items() if k != "imageB"})
    records.append({**records[3], "imageA": "missing.png"})
    records.append({**records[3], "imageB": "../../outside.png"})
    records.append("not a record")
    (sub / "PICKAPIC.json").write_text(json.dumps(records))
    return {"good": expected, "n_records": len(records), "bad_indices": list(range(n_good, len(records)))}


@pytest.fixture
def bench_src(tmp_path) -> tuple[Path, dict]:
    return tmp_path / "PreferImg-Bench", write_benchmark(tmp_path / "PreferImg-Bench")


def test_import_tasks_histories_and_problems(bench_src, tmp_path):
    src, want = bench_src
    res = preferimg.build(
        str(src), tmp_path / "ds", preferimg.PreferImgParams(subset="TEST_PICKAPIC", num_history=5), progress=False
    )
    ds = Dataset.open(tmp_path / "ds")
    assert ds.info["kind"] == "preferimg" and ds.info["benchmark"]["subset"] == "TEST_PICKAPIC" and ds.n_ref == 5
    assert ds.protocols("test") == ["1v1"]
    good = want["good"]
    tasks = ds.tasks("test", "1v1", n_ref=5)
    assert len(tasks) == len(good)
    for t, g in zip(tasks, good):
        assert t.task_id == f"test-1v1-TEST_PICKAPIC-{g['index']:05d}-n5"
        assert t.liked_index == g["liked_index"] and len(t.candidates) == 2
        h = t.history
        # The protocol's [:num_history] keeps the first 5 listed of each side; a broken one among them is left out.
        assert h.pairs == () and len(h.liked) == min(5, g["n_liked"]) - g.get("broken_liked", 0)
        assert len(h.disliked) == min(5, g["n_disliked"])
        assert {c.image_id for c in t.candidates}.isdisjoint(c.image_id for c in h.images())
    assert [len(t.history.liked) for t in tasks[:4]] == [4, 5, 3, 5] and [
        len(t.history.disliked) for t in tasks[:4]
    ] == [5, 3, 2, 5]
    # N_ref variants are prefixes of each side.
    t1 = ds.tasks("test", "1v1", n_ref=1)
    assert [len(t.history.liked) for t in t1] == [1] * len(good) and [t.liked_index for t in t1] == [
        t.liked_index for t in tasks
    ]
    assert [t.history.liked[0].image_id for t in t1] == [t.history.liked[0].image_id for t in tasks]
    # The shared image is one stored file.
    shared_ids = {tasks[0].history.liked[-1].image_id} & {tasks[1].history.disliked[0].image_id}
    assert len(shared_ids) == 1 and tasks[1].history.disliked[0].image.size == (12, 12)
    # Every bad record reported by its index, with the reason; the broken history image too.
    by_record = {}
    for p in res.problems:
        by_record.setdefault(p["record"], []).append(p["reason"])
    assert set(want["bad_indices"]) <= set(by_record)
    assert "neither 'Image A' nor 'Image B'" in by_record[want["bad_indices"][0]][0]
    assert "no imageB" in by_record[want["bad_indices"][1]][0]
    assert "missing.png" in by_record[want["bad_indices"][2]][0]
    assert "leaves the image root" in by_record[want["bad_indices"][3]][0]
    assert any("history image left out" in r and "broken_history.png" in r for r in by_record[2])
    assert ds.info["source_stats"]["records"] == want["n_records"] and ds.info["source_stats"]["records_kept"] == len(
        good
    )
    assert ds.info["problems_total"] == len(res.problems)


def test_resume_after_a_crash_gives_the_same_dataset(bench_src, tmp_path, monkeypatch):
    src, _ = bench_src
    params = preferimg.PreferImgParams(num_history=4)
    preferimg.build(str(src), tmp_path / "whole", params, progress=False)
    monkeypatch.setattr(preferimg, "CHUNK_RECORDS", 4)
    preferimg.build(str(src), tmp_path / "chunked", params, progress=False)

    class Crash(Exception):
        pass

    def crash(i):
        if i == 1:
            raise Crash

    monkeypatch.setattr(importing, "_after_chunk", crash)
    with pytest.raises(Crash):
        preferimg.build(str(src), tmp_path / "resumed", params, progress=False)
    assert (tmp_path / "resumed.partial").is_dir() and not (tmp_path / "resumed").exists()
    seen = []
    monkeypatch.setattr(importing, "_after_chunk", seen.append)
    preferimg.build(str(src), tmp_path / "resumed", params, progress=False)
    assert seen == [2, 3]  # chunks 0 and 1 were done before the crash
    cols = [c for c in pq.read_table(tmp_path / "whole" / "tasks.parquet").column_names]
    a = pq.read_table(tmp_path / "whole" / "tasks.parquet").to_pylist()
    assert (
        a
        == pq.read_table(tmp_path / "chunked" / "tasks.parquet").to_pylist()
        == pq.read_table(tmp_path / "resumed" / "tasks.parquet").to_pylist()
    )
    assert "history_liked_ids" in cols
    again = preferimg.build(str(src), tmp_path / "resumed", params, progress=False)
    assert again.already_built


def test_errors_are_one_clear_line(tmp_path, bench_src):
    src, _ = bench_src
    with pytest.raises(DataError, match="no records file for subset 'TEST_SP_ID'.*PICKAPIC.json"):
        preferimg.build(str(src), tmp_path / "x", preferimg.PreferImgParams(subset="TEST_SP_ID"), progress=False)
    with pytest.raises(DataError, match="offline mode"):
        preferimg.build("ZhouSimple/PreferImg-Bench", tmp_path / "y", progress=False)
    with pytest.raises(DataError, match="image root not found"):
        preferimg.build(
            str(src / "data/PICKAPIC/PICKAPIC.json"),
            tmp_path / "z",
            preferimg.PreferImgParams(image_root=str(tmp_path / "nope")),
            progress=False,
        )
    import subprocess
    import sys

    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "prefcli",
            "data",
            "preferimg",
            "--source",
            str(tmp_path / "absent"),
            "--out",
            str(tmp_path / "w"),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "source not found" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_v1_datasets_still_read(bench_src, tmp_path):
    """A format-1 tasks.parquet (no format-2 columns) reads as before: empty unpaired histories."""
    from _pickapic_fixture import write_shards
    from prefcli.data import pickapic

    write_shards(tmp_path / "pap", seed=3, n_shards=1)
    pickapic.build(
        str(tmp_path / "pap"),
        tmp_path / "v2",
        pickapic.BuildParams(n_ref=2, min_liked=3, val_users=1, test_users=2),
        progress=False,
    )
    import shutil

    shutil.copytree(tmp_path / "v2", tmp_path / "v1")
    t = pq.read_table(tmp_path / "v1" / "tasks.parquet")
    pq.write_table(t.drop_columns(list(TASKS_V2_COLUMNS)), tmp_path / "v1" / "tasks.parquet")
    info = json.loads((tmp_path / "v1" / "dataset.json").read_text())
    info["format_version"] = 1
    (tmp_path / "v1" / "dataset.json").write_text(json.dumps(info))
    old, new = Dataset.open(tmp_path / "v1"), Dataset.open(tmp_path / "v2")
    for a, b in zip(old.tasks("test", "1v1"), new.tasks("test", "1v1")):
        assert a.history.key() == b.history.key() and a.history.liked == () and a.ratings is None
        assert [c.image_id for c in a.candidates] == [c.image_id for c in b.candidates]


@pytest.fixture
def mocks(monkeypatch, tmp_path):
    plugins.register_plugin(fakes.MockPlugin(), name="harness-mocks")
    fakes.reset()
    monkeypatch.setenv("PREFCLI_CACHE_DIR", str(tmp_path / "default-cache"))
    yield fakes
    plugins.unregister_plugin(name="harness-mocks")
    fakes.reset()


def test_bench_runs_every_scorer_kind_and_prints_quoted_rows(bench_src, tmp_path, mocks):
    src, want = bench_src
    res = CliRunner().invoke(
        app,
        ["data", "preferimg", "--source", str(src), "--out", str(tmp_path / "ds"), "--no-progress", "--format", "json"],
    )
    assert res.exit_code == 0, res.output
    assert "record 10" in res.output  # problems are printed
    assert validate(json.loads(res.stdout))["command"] == "data preferimg"
    out = tmp_path / "bench"
    res = CliRunner().invoke(
        app,
        [
            "bench",
            str(tmp_path / "ds"),
            "--scorers",
            "mock-free,mock-emb-probe",
            "--out",
            str(out),
            "--no-progress",
            "--bootstrap",
            "50",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--format",
            "json",
        ],
    )
    assert res.exit_code == 0, res.output
    tabs = json.loads(res.stdout)["results"]["tables"]  # bench's one JSON shape (docs/outputs.md)
    assert [t["name"] for t in tabs][:1] == ["table1_1v1"] and "table2_1v3" not in [t["name"] for t in tabs]
    rows = {r["scorer"]: r for r in tabs[0]["rows"]}
    quoted = {k: r for k, r in rows.items() if r.get("quoted")}
    assert {k: r["top1"] for k, r in quoted.items()} == pytest.approx(
        {  # fractions in JSON, like every accuracy
            "PreferThinker [quoted, unverified]": 0.657,
            "PickScore [quoted, unverified]": 0.679,
            "ViPer [quoted, unverified]": 0.622,
        }
    )
    assert all(r["verified"] is False and "2511.00609" in r["source"] for r in quoted.values())
    assert "not runs of this harness" in tabs[0]["note"]
    assert rows["mock-emb-probe"]["n_ref"] == 5 and rows["mock-emb-probe"]["n_tasks"] == len(want["good"])
    assert 0.0 <= rows["mock-free"]["top1"] <= 1.0
    md = (out / "table1_1v1.md").read_text()
    assert "PreferThinker [quoted, unverified] | – | 65.7" in md
    results = json.loads((out / "results.json").read_text())
    assert results["provenance"]["config"]["protocols"] == ["1v1"]
    assert len(results["provenance"]["references"]) == 3


def test_vlm_scorer_reads_an_unpaired_unequal_history():
    """ViPer's template over an unpaired history: the turns of labelled(), and a pair history's turns unchanged."""
    from picture_factory import structured_images
    from prefcli.plugins import load_scorer
    from prefcli.types import Candidate, HistoryPair, UserHistory
    from prefcli.vlm.template import MINUS, PLUS, eval_history_items

    ims = [Candidate.from_image(im) for im in structured_images([(16, 16)] * 7, seed=5)]
    h = UserHistory(liked=tuple(ims[:3]), disliked=tuple(ims[3:4]), user_id="u")
    items = eval_history_items(h)
    assert [(it.image.image_id, it.label) for it in items] == [
        (ims[3].image_id, MINUS),
        (ims[0].image_id, PLUS),
        (ims[1].image_id, PLUS),
        (ims[2].image_id, PLUS),
    ]
    paired = UserHistory(pairs=(HistoryPair(ims[0], ims[3], prompt="p"), HistoryPair(ims[1], ims[4], prompt="q")))
    assert [(it.image, it.label, it.prompt) for it in eval_history_items(paired)] == [
        (it.image, it.label, it.prompt) for it in eval_history_items(list(paired.pairs))
    ]
    s = load_scorer("viper", weights="tiny")
    scores = s.score(ims[5:], s.condition(h))
    assert len(scores) == 2 and all(0.0 < x < 1.0 for x in scores)
    # A different history changes the state (the history is read, not ignored).
    other = s.score(ims[5:], s.condition(UserHistory(liked=tuple(ims[3:4]), disliked=tuple(ims[:3]))))
    assert other != scores
