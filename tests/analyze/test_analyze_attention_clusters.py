"""`prefcli analyze attention` and `prefcli analyze clusters` on the shipped tiny model and a small synthetic world."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from json_schemas import validate  # docs/schemas/: every command's JSON
from prefcli.cli import app

ENVELOPE = {
    "command",
    "prefcli_version",
    "results",
    "scorer",
    "weights",
    "revision",
    "options",
    "skipped",
    "provenance",
}


def invoke(*args, code: int = 0):
    res = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == code, res.output
    return res


@pytest.fixture(scope="module")
def world_ds(tmp_path_factory):
    """A balanced two-group world of new people (the shipped models never saw them)."""
    from prefcli.train.loop import synthetic_dataset

    world = {
        "preset": "opposed",
        "n_users": 16,
        "pairs_per_user": 20,
        "image_size": 32,
        "world_seed": 0,
        "user_seed": 11,
        "group_weights": [0.5, 0.5],
    }
    build = {"n_ref": 8, "val_users": 2, "test_users": 12, "seen_frac": 0.0, "hold_out": "user", "seed": 0}
    return synthetic_dataset(world, build, root=tmp_path_factory.mktemp("clusters-world"))


def test_attention_rows_sum_to_one_and_pref_columns_are_part_of_them(world_ds):
    from prefcli.analyze import attention, inputs
    from prefcli.data.dataset import Dataset
    from prefcli.train.checkpoint import load_checkpoint
    from prefcli.vlm.template import eval_history_items

    ds = Dataset.open(world_ds)
    users, _ = inputs.user_inputs(ds, "test", 8, None, 2)
    target = inputs.fixed_target(ds, None, "test", 8)
    vlm = load_checkpoint("tiny-opposed-tokens", attn_implementation="eager")
    for head in (None, 1):
        rows, pos = attention.attention_rows(
            vlm, eval_history_items(users[0].history), target.candidate, None, -1, head
        )
        T = rows.shape[1]
        assert rows.shape == (1, T) and pos == [T - 1]  # the tiny target is one image token, the last one
        assert float(rows.sum()) == pytest.approx(1.0, abs=1e-5)
        assert float(rows.min()) >= 0
    res = attention.user_attention(vlm, users, target, orders=3, layer=0, head=None, seed=1)
    assert res["pref"].shape == (2, 3, 1, vlm.n_pref_tokens) and res["layer"] == 0
    assert np.allclose(res["row_sums"], 1.0, atol=1e-5)
    assert np.allclose(res["pref"].sum(-1), res["mass"]) and (res["mass"] <= 1 + 1e-6).all()
    # Different random orders really differ (the history is reordered, so attention moves).
    assert not np.allclose(res["pref"][0, 0], res["pref"][0, 1])


def test_attention_command_writes_heatmap_npz_and_json(world_ds, tmp_path):
    from PIL import Image

    from prefcli.data.dataset import Dataset

    ds = Dataset.open(world_ds)
    two = ds.users("test")[:2]
    out = tmp_path / "att"
    res = invoke(
        "analyze",
        "attention",
        "tiny-opposed-tokens",
        world_ds,
        "--users",
        ",".join(two),
        "--orders",
        "2",
        "--layer",
        "1",
        "--head",
        "0",
        "--out",
        out,
        "--no-progress",
        "--format",
        "json",
    )
    doc = validate(json.loads(res.stdout))
    assert set(doc) == ENVELOPE and doc["results"]["users"] == two and doc["results"]["head"] == 0
    assert doc["results"]["shape"]["pref"] == [2, 2, 1, 10]
    z = np.load(out / "attention.npz")
    assert z["pref"].shape == (2, 2, 1, 10) and np.allclose(z["row_sums"], 1, atol=1e-5)
    assert np.allclose(z["pref"], np.asarray(doc["results"]["pref"]))
    for ext in ("png", "pdf", "svg"):
        assert (out / f"attention.{ext}").stat().st_size > 1000
    assert Image.open(out / "attention.png").info["dpi"][0] == pytest.approx(300, abs=1)
    rows = list(csv.DictReader(io.StringIO((out / "attention.csv").read_text())))
    assert [r["user"] for r in rows] == two and 0 <= float(rows[0]["mass"]) <= 1


def test_attention_bad_options_are_one_line(world_ds, tmp_path):
    from prefcli.cli import main

    for extra in (["--layer", "7"], ["--head", "9"], ["--users", "nobody"]):
        with pytest.raises(SystemExit) as e:
            main(
                [
                    "analyze",
                    "attention",
                    "tiny-opposed-tokens",
                    str(world_ds),
                    "--out",
                    str(tmp_path / "x"),
                    "--no-progress",
                    *extra,
                ]
            )
        assert e.value.code == 2, extra


def test_cluster_scores_are_scikit_learns():
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, davies_bouldin_score, silhouette_score

    from prefcli.analyze.clusters import agreement, cluster_scores

    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(0, 1, (10, 5)), rng.normal(4, 1, (10, 5)), rng.normal((0, 8, 0, 0, 0), 1, (10, 5))])
    got = cluster_scores(X, 3, seed=0)
    labels = KMeans(n_clusters=3, n_init=10, random_state=0).fit_predict(X)
    assert got["labels"] == labels.tolist()
    assert got["silhouette"] == pytest.approx(silhouette_score(X, labels), rel=1e-12)
    assert got["davies_bouldin"] == pytest.approx(davies_bouldin_score(X, labels), rel=1e-12)
    truth = [0] * 10 + [1] * 10 + [2] * 10
    assert agreement(got["labels"], truth) == pytest.approx(adjusted_rand_score(truth, labels)) == pytest.approx(1.0)


def test_clusters_command_recovers_the_true_taste_groups(world_ds, tmp_path):
    """On the synthetic world, the shipped tokens model's user embeddings split by true group."""
    out = tmp_path / "clu"
    res = invoke(
        "analyze",
        "clusters",
        "tiny-opposed-tokens",
        world_ds,
        "--out",
        out,
        "--no-progress",
        "--format",
        "json",
        "--max-k",
        "4",
    )
    doc = validate(json.loads(res.stdout))
    r = doc["results"]
    assert set(doc) == ENVELOPE and r["k"] == 2 and r["n_users"] == 12 and r["world"]
    assert [s["k"] for s in r["sweep"]] == [2, 3, 4]
    assert {u["group"] for u in r["users"]} == {0, 1}
    # Measured: ARI 1.0 (both groups recovered exactly) on these 12 new people; a model that
    # ignored the history would give every user the same embedding and an ARI near 0.
    assert r["ari"] > 0.6, r
    assert "adjusted Rand index" in res.stderr
    X = np.load(out / "embeddings.npy")
    assert X.shape == (12, 64)
    for ext in ("png", "pdf", "svg", "md", "tex", "csv", "json"):
        assert (out / f"clusters.{ext}").is_file(), ext
    assert "\\textbf" in (out / "clusters.tex").read_text()
    from tests.core.test_latex import PDFLATEX, compile_file

    if PDFLATEX:  # the whole .tex, as written, compiles in a plain article + booktabs
        compile_file(out / "clusters.tex", tmp_path)


def test_a_model_that_ignores_histories_clusters_people_at_chance(world_ds, tmp_path):
    """The control: the population model (trained without histories) does not separate the groups (measured ARI -0.07)."""
    res = invoke(
        "analyze",
        "clusters",
        "tiny-opposed-population",
        world_ds,
        "--out",
        tmp_path / "pop",
        "--no-progress",
        "--format",
        "json",
        "--max-k",
        "2",
    )
    assert json.loads(res.stdout)["results"]["ari"] < 0.5
