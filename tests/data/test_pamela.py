"""Ratings as a first-class kind: `prefcli data pamela`, the synthetic world's ratings, rating tasks and metrics.

PAMELA's split names and sizes come from its dataset card (bethgelab/PAMELA);
its column layout could not be confirmed offline, so the fixtures use the
layout prefcli/data/pamela_format.py assumes (one table per split, one rating
per row), and a file that does not match must fail with one clear line.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from json_schemas import validate  # docs/schemas/: every command's JSON
from prefcli import plugins
from prefcli.cli import app
from prefcli.data import pamela
from prefcli.data.dataset import Dataset
from prefcli.data.synthetic import WorldConfig, world_pool
from prefcli.data.synthetic_ratings import RatingConfig, truth_spearman, write_rating_world
from prefcli.errors import DataError
from prefcli.harness import rating_metrics
from prefcli.hookspecs import hookimpl
from prefcli.scorer import EmbeddingScorer, ScorerSpec
from prefcli.types import Candidate

WORLD = dict(n_users=16, n_prompts=4, images_per_prompt=16, image_size=16, pairs_per_user=8)


@pytest.fixture(scope="module")
def rated(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pamela")
    write_rating_world(root / "src", WorldConfig.from_preset("default", **WORLD), RatingConfig(ratings_per_user=40))
    pamela.build(str(root / "src"), root / "ds", pamela.PamelaParams(n_ref=16, pairs_per_user=6), progress=False)
    return root / "src", root / "ds"


def test_synthetic_ratings_in_the_pamela_layout(rated):
    src, _ = rated
    names = sorted(p.name for p in src.glob("pamela_*.csv"))
    assert names == [
        "pamela_test_seen.csv",
        "pamela_test_unseen.csv",
        "pamela_train.csv",
        "pamela_val_seen.csv",
        "pamela_val_unseen.csv",
    ]
    rows = list(csv.DictReader(open(src / "pamela_train.csv")))
    assert set(rows[0]) == {"user_id", "image", "rating", "prompt"} and {int(r["rating"]) for r in rows} <= set(
        range(1, 8)
    )
    assert len({int(r["rating"]) for r in rows}) >= 5  # the Likert scale is used
    images = {r["image"] for name in names for r in csv.DictReader(open(src / name))}
    raters = {}
    for name in names:
        for r in csv.DictReader(open(src / name)):
            raters.setdefault(r["image"], set()).add(r["user_id"])
    assert np.mean([len(v) for v in raters.values()]) > 3  # every image rated by several people, as in PAMELA
    assert all((src / i).is_file() for i in images)
    # Noise-free utility predicts the ratings well but not perfectly (noise 0.5).
    assert 0.6 < truth_spearman(src) < 0.99


def test_pamela_dataset_splits_and_tasks(rated):
    _, ds_path = rated
    ds = Dataset.open(ds_path)
    assert ds.info["kind"] == "pamela" and ds.info["format_version"] == 2 and ds.has_ratings
    assert ds.protocols("test") == ["1v1", "rating"] and ds.n_ref == 16
    r = ds.ratings_table()
    assert r.num_rows == 16 * 40 and ds.info["problems_total"] == 0
    train_users = set(ds.ratings_table("train")["user_id"].to_pylist())
    test = ds.ratings_table("test").to_pylist()
    seen = {x["user_id"] for x in test if x["seen"]}
    unseen = {x["user_id"] for x in test if x["seen"] is False}
    assert seen and unseen and seen <= train_users and not (unseen & train_users)
    tasks = ds.tasks("test", "rating")
    assert {t.user_id for t in tasks} == seen | unseen
    by_id = {x["rating_id"]: x for x in r.to_pylist()}
    for t in tasks:
        assert t.liked_index == -1 and len(t.ratings) == len(t.candidates) >= 2 and len(t.history.ratings) == 16
        assert not {c.image_id for c in t.candidates} & {h.image.image_id for h in t.history.ratings}
        for h in t.history.ratings:
            row = by_id[h.rating_id]
            assert row["user_id"] == t.user_id and row["rating"] == h.rating
            assert row["split"] == ("train" if t.seen else "test")
        truth = sorted(
            (x["image_id"], x["rating"])
            for x in test
            if x["user_id"] == t.user_id and x["rating_id"] not in {h.rating_id for h in t.history.ratings}
        )
        assert sorted(zip((c.image_id for c in t.candidates), t.ratings)) == truth
    small = ds.tasks("test", "rating", n_ref=4)
    assert [len(t.history.ratings) for t in small] == [4] * len(tasks)
    assert [[h.rating_id for h in t.history.ratings] for t in small] == [
        [h.rating_id for h in t.history.ratings[:4]] for t in tasks
    ]
    rating_of = {(x["user_id"], x["image_id"]): x["rating"] for x in test}
    pairs = ds.tasks("test", "1v1")
    assert pairs and all(len(t.candidates) == 2 for t in pairs)
    for t in pairs:
        liked, other = t.candidates[t.liked_index], t.candidates[1 - t.liked_index]
        assert rating_of[(t.user_id, liked.image_id)] > rating_of[(t.user_id, other.image_id)]
    assert {t.liked_index for t in pairs} == {0, 1}


def test_rerun_and_resume_give_the_same_dataset(rated, tmp_path, monkeypatch):
    from prefcli.data import importing

    src, ds_path = rated
    monkeypatch.setattr(pamela, "CHUNK_IMAGES", 16)

    def crash(i):
        if i == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(importing, "_after_chunk", crash)
    params = pamela.PamelaParams(n_ref=16, pairs_per_user=6)
    with pytest.raises(KeyboardInterrupt):
        pamela.build(str(src), tmp_path / "ds", params, progress=False)
    done = []
    monkeypatch.setattr(importing, "_after_chunk", done.append)
    pamela.build(str(src), tmp_path / "ds", params, progress=False)
    assert done and done[0] == 2
    import pyarrow.parquet as pq

    for name in ("ratings.parquet", "tasks.parquet"):
        assert pq.read_table(tmp_path / "ds" / name).to_pylist() == pq.read_table(ds_path / name).to_pylist()
    assert pamela.build(str(src), tmp_path / "ds", params, progress=False).already_built


def _png(seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(30, 225, (10, 10, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_bad_rows_and_unmatched_files(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    rows = []
    for u in range(3):
        for i in range(8):
            name = f"im{u}_{i}.png"
            (src / "images" / name).write_bytes(_png(u * 100 + i))
            rows.append({"participant_id": f"p{u}", "file_name": name, "score": 1 + (i * 3 + u) % 5})
    rows.append({"participant_id": "p0", "file_name": "missing.png", "score": 3})
    rows.append({"participant_id": "p1", "file_name": "im1_0.png", "score": "high"})
    with open(src / "pamela_test_unseen.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["participant_id", "file_name", "score"])
        w.writeheader()
        w.writerows(rows)
    # A split stored the hub's way: embedded image bytes in parquet.
    emb = [{"user_id": "p9", "image": {"bytes": _png(900 + i), "path": None}, "rating": float(i % 4)} for i in range(8)]
    pq.write_table(pa.Table.from_pylist(emb), src / "pamela_val_unseen.parquet")
    res = pamela.build(str(src), tmp_path / "ds", pamela.PamelaParams(n_ref=2, pairs_per_user=2), progress=False)
    reasons = {p["where"]: p["reason"] for p in res.problems}
    assert (
        "not found" in reasons["pamela_test_unseen.csv row 24"]
        and "is not a number" in reasons["pamela_test_unseen.csv row 25"]
    )
    ds = Dataset.open(tmp_path / "ds")
    assert ds.ratings_table().num_rows == 24 + 8
    assert len(ds.tasks("val", "rating")) == 1 and len(ds.tasks("test", "rating")) == 3
    assert ds.info["source"]["files"]["pamela_test_unseen"]["columns"] == {
        "user": "participant_id",
        "image": "file_name",
        "rating": "score",
        "prompt": None,
    }

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "pamela_train.csv").write_text("who,what\n1,2\n")
    with pytest.raises(
        DataError, match=r"pamela_train.csv: no user column \(it has who, what; accepted: user_id.*pamela_format.py"
    ):
        pamela.build(str(bad), tmp_path / "x", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no PAMELA split files"):
        pamela.build(str(tmp_path / "empty"), tmp_path / "y", progress=False)
    with pytest.raises(DataError, match="offline mode"):
        pamela.build("bethgelab/PAMELA", tmp_path / "z", progress=False)


def test_rating_metrics_by_hand():
    m = rating_metrics.task_metrics([0.1, 0.2, 0.3, 0.4], [1, 2, 3, 4])
    assert (
        m["spearman"] == pytest.approx(1)
        and m["kendall"] == pytest.approx(1)
        and m["pairwise_accuracy"] == 1
        and m["mae_calibrated"] == pytest.approx(0)
    )
    m = rating_metrics.task_metrics([4, 3, 2, 1], [1, 2, 3, 4])
    # Reversed: the calibration may not flip the order, so MAE is that of the mean rating (1, 0, 0, 1)/4... = 1.0
    assert (
        m["spearman"] == pytest.approx(-1) and m["pairwise_accuracy"] == 0 and m["mae_calibrated"] == pytest.approx(1.0)
    )
    m = rating_metrics.task_metrics([1, 1, 2, 0], [3, 1, 3, 1])
    # pairs with different ratings: (0,1) s 1=1 tie -> miss, (0,3) hit, (1,2) hit, (2,3) hit -> 3/4
    assert m["pairwise_accuracy"] == pytest.approx(0.75) and m["n_pairs"] == 4
    assert rating_metrics.task_metrics([1, 2], [3, 3]) is None  # no ordering to predict
    m = rating_metrics.task_metrics([5, 5, 5], [1, 2, 3])
    assert m["spearman"] == 0 and m["pairwise_accuracy"] == 0 and m["mae_calibrated"] == pytest.approx(2 / 3)
    assert rating_metrics.task_metrics([1, 2, 3], [1, 2, 3], higher_is_better=False)["spearman"] == pytest.approx(-1)
    recs = [
        {"scores": [1, 2, 3], "ratings": [1, 2, 3], "user_id": "a", "seen": True},
        {"scores": [3, 2, 1], "ratings": [1, 2, 3], "user_id": "b", "seen": False},
        {"scores": [1, 2], "ratings": [2, 2], "user_id": "c", "seen": False},
    ]
    s = rating_metrics.summarize(recs, n_boot=50)
    assert s["all"]["spearman"]["value"] == pytest.approx(0) and s["all"]["spearman"]["n_users"] == 2
    assert s["seen"]["pairwise_accuracy"]["value"] == 1 and s["unseen"]["pairwise_accuracy"]["value"] == 0
    assert s["all"]["spearman"]["tasks_without_rating_spread"] == 1


# -- a scorer that sees the world's true features, so its probe's ridge fit must find the taste ----------

PHI: dict[str, np.ndarray] = {}


class PhiEmbed(EmbeddingScorer):
    def embed_images(self, candidates: Sequence[Candidate]):
        return np.stack([PHI[c.image_id] for c in candidates]).astype(np.float32)

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        return [float(v[0]) for v in self.embed_images(candidates)]


class PhiPlugin:
    @hookimpl
    def register_scorers(self, register):
        register(
            ScorerSpec(
                name="phi-emb",
                factory=f"{__name__}:PhiEmbed",
                needs=frozenset({"image"}),
                default_weights="phi",
                embedding=True,
            )
        )


@pytest.fixture
def phi_scorer(rated, monkeypatch, tmp_path):
    src, _ = rated

    for row in world_pool(WorldConfig.from_preset("default", **WORLD)):
        for im in row:
            p = src / "images" / f"{im.uid}.png"
            if p.is_file():
                PHI[hashlib.sha256(p.read_bytes()).hexdigest()] = im.phi
    plugins.register_plugin(PhiPlugin(), name="phi-mock")
    monkeypatch.setenv("PREFCLI_CACHE_DIR", str(tmp_path / "cache"))
    yield
    plugins.unregister_plugin(name="phi-mock")


def test_bench_on_ratings_probe_fits_ratings(rated, phi_scorer, tmp_path):
    _, ds_path = rated
    out = tmp_path / "bench"
    res = CliRunner().invoke(
        app,
        [
            "bench",
            str(ds_path),
            "--scorers",
            "phi-emb,phi-emb-probe",
            "--out",
            str(out),
            "--no-progress",
            "--bootstrap",
            "50",
            "--format",
            "json",
            "--n-ref",
            "16",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    tabs = {
        t["name"]: t for t in validate(json.loads(res.stdout))["results"]["tables"]
    }  # bench's one JSON shape (docs/outputs.md)
    assert {"table1_1v1", "table_ratings", "table3_seen_unseen"} <= set(tabs)
    rows = {r["scorer"]: r for r in tabs["table_ratings"]["rows"]}
    probe, free = rows["phi-emb-probe"], rows["phi-emb"]
    assert probe["n_ref"] == 16 and free["n_ref"] in ("–", None)  # history-free: no N_ref
    # Ridge on the true features recovers each person's taste; one fixed feature does not.
    assert probe["spearman"] > 0.5 and probe["spearman"] > free["spearman"] + 0.2
    frac = lambda v: v / 100.0 if v > 1.0 else v  # noqa: E731 - JSON tables may give fractions or percents
    assert frac(probe["pairwise_accuracy"]) > 0.70 and probe["mae_calibrated"] < free["mae_calibrated"]
    assert probe["seen_spearman"] is not None and probe["unseen_spearman"] is not None
    t1 = {r["scorer"]: r for r in tabs["table1_1v1"]["rows"]}
    assert frac(t1["phi-emb-probe"]["top1"]) > 0.65
    assert not any(r.get("quoted") for r in tabs["table1_1v1"]["rows"])  # no published rows for PAMELA
    doc = json.loads((out / "results.json").read_text())
    run = next(r for r in doc["results"]["runs"] if r["scorer"] == "phi-emb-probe" and r["protocol"] == "rating")
    assert set(run["metrics"]["all"]) == set(rating_metrics.METRICS)
    res = CliRunner().invoke(
        app,
        [
            "eval",
            str(ds_path),
            "--scorer",
            "phi-emb-probe",
            "--protocol",
            "rating",
            "--no-progress",
            "--bootstrap",
            "20",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0 and "Spearman" in res.stdout and "unseen" in res.stdout


def test_preference_model_on_rating_tasks(rated):
    """A pairwise-trained VLM reads a rated history through labelled() and is scored by the rating metrics."""
    from prefcli.harness.evaluate import evaluate
    from prefcli.harness.runner import ScorerHandle

    _, ds_path = rated
    tasks = Dataset.open(ds_path).tasks("test", "rating", n_ref=4)[:2]
    for t in tasks:
        t.candidates = list(t.candidates)[:6]
        t.ratings = list(t.ratings)[:6]
    h = tasks[0].history
    assert len(h.labelled()) == len(h.liked_images()) + len(h.disliked_images()) >= 2
    run, records = evaluate(ScorerHandle("viper", "tiny"), tasks, n_boot=10, protocol="rating")
    assert run["protocol"] == "rating" and len(records) == 2 and all(len(r["scores"]) == 6 for r in records)
    assert set(run["metrics"]["all"]) == set(rating_metrics.METRICS)


def test_probe_ridge_predicts_ratings():
    from prefcli.types import RatedImage, UserHistory

    PHI.clear()
    rng = np.random.default_rng(0)
    w = rng.normal(size=6)
    cands = []
    for i in range(40):
        v = rng.normal(size=6)
        PHI[f"x{i}"] = v
        cands.append(Candidate(image_id=f"x{i}"))
    util = np.array([PHI[c.image_id] @ w for c in cands])
    hist = UserHistory(ratings=tuple(RatedImage(c, float(u)) for c, u in zip(cands[:25], util[:25])))
    plugins.register_plugin(PhiPlugin(), name="phi-mock")
    try:
        probe = plugins.load_scorer("phi-emb-probe")
        pred = probe.score(cands[25:], probe.condition(hist))
    finally:
        plugins.unregister_plugin(name="phi-mock")
    assert np.corrcoef(pred, util[25:])[0, 1] > 0.9
    # A rated history whose ratings are all equal carries no taste: one score for every candidate.
    flat = UserHistory(ratings=tuple(RatedImage(c, 3.0) for c in cands[:5]))
    plugins.register_plugin(PhiPlugin(), name="phi-mock")
    try:
        probe = plugins.load_scorer("phi-emb-probe")
        assert len(set(probe.score(cands[25:], probe.condition(flat)))) == 1
    finally:
        plugins.unregister_plugin(name="phi-mock")


def test_cli_synthetic_ratings_then_pamela(tmp_path):
    r = CliRunner().invoke(
        app,
        [
            "data",
            "synthetic-ratings",
            "--out",
            str(tmp_path / "w"),
            "--users",
            "8",
            "--ratings-per-user",
            "12",
            "--image-size",
            "16",
            "--format",
            "json",
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    counts = {row["split"]: row["ratings"] for row in validate(json.loads(r.stdout))["results"]["rows"]}
    assert (
        sum(counts.values()) == 8 * 12 and counts["pamela_test_unseen"] == 12
    )  # 2 unseen people: one in val, one in test
    r = CliRunner().invoke(
        app,
        [
            "data",
            "pamela",
            "--source",
            str(tmp_path / "w"),
            "--out",
            str(tmp_path / "ds"),
            "--n-ref",
            "4",
            "--no-progress",
            "--format",
            "json",
        ],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.output
    rows = {row["split"]: row for row in validate(json.loads(r.stdout))["results"]["rows"]}
    assert (
        rows["test"]["ratings"] == counts["pamela_test_seen"] + counts["pamela_test_unseen"]
        and rows["test"]["tasks_rating"] == 7
    )
    r = CliRunner().invoke(app, ["data", "info", str(tmp_path / "ds"), "--format", "csv"], catch_exceptions=False)
    assert r.exit_code == 0 and r.stdout.splitlines()[0].endswith("ratings,tasks_rating")
