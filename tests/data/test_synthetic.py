"""The synthetic taste world: schema, determinism, ground truth, and that taste is learnable in principle."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from prefcli.data import synthetic as S
from prefcli.errors import ConfigError, DataError

pq = pytest.importorskip("pyarrow.parquet")

SCHEMA = [
    ("user_id", "int64"),
    ("caption", "string"),
    ("jpg_0", "binary"),
    ("jpg_1", "binary"),
    ("label_0", "double"),
    ("label_1", "double"),
    ("image_0_uid", "string"),
    ("image_1_uid", "string"),
    ("best_image_uid", "string"),
    ("has_label", "bool"),
    ("are_different", "bool"),
    ("model_0", "string"),
    ("model_1", "string"),
    ("ranking_id", "int64"),
]


def tiny(preset: str = "default", **kw) -> S.WorldConfig:
    base = dict(n_users=8, pairs_per_user=10, image_size=32, n_prompts=6, images_per_prompt=8, rows_per_shard=30)
    base.update(kw)
    return S.WorldConfig.from_preset(preset, **base)


def read_all(d: Path):
    import pyarrow as pa

    shards = sorted(d.glob("shard-*.parquet"))
    assert shards, f"no shards in {d}"
    return pa.concat_tables([pq.read_table(s) for s in shards])


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, S.WorldConfig, dict]:
    d = tmp_path_factory.mktemp("world")
    cfg = tiny()
    summary = S.write_world(d, cfg, progress=False)
    return d, cfg, summary


def test_schema_and_counts_are_pickapic(world):
    d, cfg, summary = world
    t = read_all(d)
    assert [(f.name, str(f.type)) for f in t.schema][: len(SCHEMA)] == SCHEMA
    assert t.schema.names == [n for n, _ in SCHEMA] + ["created_at"]
    assert str(t.schema.field("created_at").type).startswith("timestamp")
    assert t.num_rows == cfg.n_users * cfg.pairs_per_user == summary["rows"]
    assert summary["shards"] == len(list(d.glob("shard-*.parquet"))) == 3  # 80 rows / 30 per shard
    assert len(set(t.column("user_id").to_pylist())) == cfg.n_users
    assert len(set(t.column("ranking_id").to_pylist())) == t.num_rows
    assert all(t.column("has_label").to_pylist()) and all(t.column("are_different").to_pylist())
    assert set(t.column("model_0").to_pylist()) == {S.MODEL_NAME}
    assert not list(d.glob(".*.tmp")) and not (d / ".world.partial.json").exists()


def test_labels_are_consistent(world):
    d, _, _ = world
    rows = (
        read_all(d)
        .select(["label_0", "label_1", "image_0_uid", "image_1_uid", "best_image_uid", "caption"])
        .to_pylist()
    )
    truth = S.load_truth(d)
    for r in rows:
        assert {r["label_0"], r["label_1"]} == {0.0, 1.0}
        assert r["best_image_uid"] == (r["image_0_uid"] if r["label_0"] == 1.0 else r["image_1_uid"])
        assert r["image_0_uid"] != r["image_1_uid"]
        # A pair shares its prompt.
        assert truth.image_prompt[r["image_0_uid"]] == truth.image_prompt[r["image_1_uid"]] == r["caption"]


def test_images_decode_at_their_size_and_are_never_black(world):
    from PIL import Image

    d, cfg, _ = world
    t = read_all(d)
    by_uid = {}
    for col, uid in (("jpg_0", "image_0_uid"), ("jpg_1", "image_1_uid")):
        for b, u in zip(t.column(col).to_pylist(), t.column(uid).to_pylist()):
            assert by_uid.setdefault(u, b) == b, "one uid, two different images"
    for b in by_uid.values():
        im = Image.open(io.BytesIO(b))
        assert im.format == "PNG" and im.mode == "RGB" and im.size == (cfg.image_size, cfg.image_size)
        a = np.asarray(im)
        assert a.max() > 0 and a.mean() > 40
        assert a.std() > 5, "an image with no visible content"
    # Distinct uids are distinct pictures.
    assert len(set(by_uid.values())) == len(by_uid)


def test_darkest_attributes_still_render_visibly():
    a = S.ImageAttrs("star", 0.66, S.SAT_RANGE[1], S.BRIGHT_RANGE[0], "checker", S.SCALE_RANGE[0], 0.2, -0.2, 0, 1)
    for size in (32, 64):
        px = np.asarray(S.render_image(a, size))
        assert px.shape == (size, size, 3) and px.min(axis=(0, 1)).max() > 0 and px.mean() > 40


def test_users_never_see_an_image_twice_but_images_recur_across_users(world):
    d, _, _ = world
    t = read_all(d).select(["user_id", "image_0_uid", "image_1_uid"]).to_pylist()
    seen: dict[int, list[str]] = {}
    for r in t:
        seen.setdefault(r["user_id"], []).extend([r["image_0_uid"], r["image_1_uid"]])
    for u, uids in seen.items():
        assert len(uids) == len(set(uids)), f"user {u} saw an image twice"
    counts: dict[str, int] = {}
    for uids in seen.values():
        for x in uids:
            counts[x] = counts.get(x, 0) + 1
    assert max(counts.values()) > 1


def test_same_config_gives_identical_output(tmp_path, world):
    d, cfg, _ = world
    S.write_world(tmp_path, S.WorldConfig.from_dict(cfg.to_dict()), progress=False)
    for name in ["shard-00000.parquet", "shard-00002.parquet", "users.parquet", "images.parquet"]:
        assert pq.read_table(tmp_path / name).equals(pq.read_table(d / name)), name
        assert (tmp_path / name).read_bytes() == (d / name).read_bytes(), name
    assert json.loads((tmp_path / "world.json").read_text()) == json.loads((d / "world.json").read_text())


def test_interrupted_write_resumes_and_finished_write_is_kept(tmp_path, world):
    d, cfg, _ = world
    S.write_world(tmp_path, cfg, progress=False)
    again = S.write_world(tmp_path, cfg, progress=False)
    assert again["skipped"]
    # Simulate a crash after the first shard: the partial marker is there, world.json is not.
    (tmp_path / "world.json").unlink()
    (tmp_path / "shard-00001.parquet").unlink()
    (tmp_path / "shard-00002.parquet").unlink()
    (tmp_path / ".world.partial.json").write_text(json.dumps({"config": cfg.to_dict()}))
    s = S.write_world(tmp_path, cfg, progress=False)
    assert s["resumed_shards"] == 1 and not s["skipped"]
    assert read_all(tmp_path).equals(read_all(d))
    # A different config in the same directory rewrites everything.
    other = tiny(n_users=4)
    s = S.write_world(tmp_path, other, progress=False)
    assert s["rows"] == 40 and s["resumed_shards"] == 0
    assert read_all(tmp_path).num_rows == 40


def test_new_user_seed_keeps_the_world_but_draws_new_people(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    S.write_world(a, tiny(user_seed=0), progress=False)
    S.write_world(b, tiny(user_seed=1), progress=False)
    ta, tb = S.load_truth(a), S.load_truth(b)
    np.testing.assert_array_equal(ta.group_weights, tb.group_weights)
    assert ta.image_features.keys() == tb.image_features.keys()
    assert not set(ta.user_weights) & set(tb.user_weights), "user ids collide across user seeds"
    wa = np.stack(list(ta.user_weights.values()))
    wb = np.stack(list(tb.user_weights.values()))
    assert not np.allclose(wa, wb)
    # A different world seed changes the taste groups.
    S.write_world(tmp_path / "c", tiny(world_seed=1), progress=False)
    assert not np.allclose(S.load_truth(tmp_path / "c").group_weights, ta.group_weights)


def _agreement(truth: S.Truth, users: list[int], pairs: list[tuple[str, str]]) -> tuple[float, float]:
    """Mean agreement of noise-free preferences on a common pair set, within and across groups."""
    prefs = {u: np.array([truth.utility(u, a) > truth.utility(u, b) for a, b in pairs]) for u in users}
    intra, inter = [], []
    for u, v in itertools.combinations(users, 2):
        agree = float((prefs[u] == prefs[v]).mean())
        (intra if truth.user_group[u] == truth.user_group[v] else inter).append(agree)
    return float(np.mean(intra)), float(np.mean(inter))


@pytest.mark.parametrize("preset", ["default", "opposed"])
def test_users_agree_more_within_their_group(tmp_path, preset):
    cfg = tiny(preset, n_users=16, pairs_per_user=2, group_weights=None)
    S.write_world(tmp_path, cfg, progress=False)
    truth = S.load_truth(tmp_path)
    pool = S.world_pool(cfg)
    pairs = [(row[i].uid, row[j].uid) for row in pool for i, j in itertools.combinations(range(len(row)), 2)]
    intra, inter = _agreement(truth, sorted(truth.user_weights), pairs)
    assert intra > inter + 0.1, (intra, inter)
    if preset == "opposed":
        assert inter < 0.4, "opposed groups should mostly disagree"
        np.testing.assert_allclose(truth.group_weights[0], -truth.group_weights[1])


def test_opposed_preset_splits_users_80_20_and_cancels_on_average():
    cfg = S.WorldConfig.from_preset("opposed", n_users=10)
    assert list(np.bincount(S.user_groups(cfg))) == [8, 2]
    W = S.group_weight_vectors(cfg)
    assert np.allclose(W.sum(axis=0), 0)
    names = np.array(S.FEATURE_NAMES)
    active = set(names[np.abs(W[0]) > 1e-9])
    assert {"hue_cos", "brightness"} <= active and active <= {
        "hue_cos",
        "hue_sin",
        "brightness",
        *(f"pattern_{p}" for p in S.PATTERNS),
    }


def test_preferred_images_have_higher_true_utility(tmp_path):
    cfg = tiny(temperature=0.05, n_users=6)
    S.write_world(tmp_path, cfg, progress=False)
    truth = S.load_truth(tmp_path)
    rows = read_all(tmp_path).select(["user_id", "image_0_uid", "image_1_uid", "best_image_uid"]).to_pylist()
    gaps = []
    for r in rows:
        other = r["image_1_uid"] if r["best_image_uid"] == r["image_0_uid"] else r["image_0_uid"]
        gaps.append(truth.utility(r["user_id"], r["best_image_uid"]) - truth.utility(r["user_id"], other))
    gaps = np.array(gaps)
    assert gaps.mean() > 0.5 and (gaps > 0).mean() > 0.9
    # Noisier labels agree less often with the utility.
    noisy = S.write_world(tmp_path / "noisy", tiny(temperature=5.0, n_users=6), progress=False)
    assert noisy["label_agrees_with_utility"] < (gaps > 0).mean()


def test_user_folders(tmp_path):
    cfg = tiny("opposed")
    d = S.write_user_folders(tmp_path / "u", cfg, n_history=5, n_candidates=6)
    liked = sorted(p.name for p in (d / "liked").glob("*.png"))
    disliked = sorted(p.name for p in (d / "disliked").glob("*.png"))
    cands = sorted(p.name for p in (d / "candidates").glob("*.png"))
    assert liked == disliked and len(liked) == 5 and len(cands) == 6
    truth = json.loads((d / "truth.json").read_text())
    prompts = json.loads((d / "prompts.json").read_text())
    assert set(truth["candidates"]) == {f"candidates/{c}" for c in cands}
    util = truth["candidates"]
    assert truth["ranking"] == sorted(util, key=lambda k: -util[k])
    assert set(prompts) == {
        f"{sub}/{n}" for sub, names in (("liked", liked), ("disliked", disliked), ("candidates", cands)) for n in names
    }
    assert len({prompts[f"candidates/{c}"] for c in cands}) == 1
    assert truth["new_user"] and truth["user_id"] not in {S.user_id_of(cfg, i) for i in range(cfg.n_users)}
    # An existing user's folder history is their own first pairs.
    uid = S.user_id_of(cfg, 3)
    d2 = S.write_user_folders(tmp_path / "v", cfg, user_id=uid, n_history=3, n_candidates=2)
    t2 = json.loads((d2 / "truth.json").read_text())
    assert t2["group"] == int(S.user_groups(cfg)[3]) and not t2["new_user"]
    assert all(h["liked_uid"] != h["disliked_uid"] for h in t2["history"])
    with pytest.raises(ConfigError):
        S.write_user_folders(tmp_path / "w", cfg, user_id=10**9)


def test_bad_configs_and_missing_truth_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="preset"):
        S.WorldConfig.from_preset("nope")
    with pytest.raises(ConfigError, match="pairs_per_user"):
        tiny(pairs_per_user=1000)
    with pytest.raises(ConfigError, match="group_weights"):
        tiny(n_groups=2, group_weights=(1.0, 2.0, 3.0))
    with pytest.raises(ConfigError, match="unknown"):
        S.WorldConfig.from_preset("default", colour=3)
    with pytest.raises(DataError, match="world.json"):
        S.load_truth(tmp_path)


def test_cli_writes_world_and_folders(tmp_path):
    from typer.testing import CliRunner

    from prefcli.cli import app

    out, folders = tmp_path / "w", tmp_path / "f"
    args = [
        "data",
        "synthetic",
        "--out",
        str(out),
        "--users",
        "4",
        "--pairs-per-user",
        "5",
        "--image-size",
        "32",
        "--prompts",
        "4",
        "--images-per-prompt",
        "6",
        "--preset",
        "opposed",
        "--group-weight",
        "0.5",
        "--group-weight",
        "0.5",
        "--user-folders",
        str(folders),
        "--history",
        "3",
        "--candidates",
        "4",
        "--no-progress",
        "--format",
        "json",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["results"]["rows"]
    assert rows[0]["rows"] == 20 and rows[0]["users_per_group"] == "2/2" and rows[0]["shards"] == 1
    assert len(list((folders / "liked").glob("*.png"))) == 3
    world = json.loads((out / "world.json").read_text())
    assert world["config"]["preset"] == "opposed" and world["config"]["group_weights"] == [0.5, 0.5]
    res = CliRunner().invoke(app, ["data", "synthetic", "--users", "3"])
    assert res.exit_code != 0
