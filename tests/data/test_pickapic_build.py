"""`prefcli data pickapic`: the paper's selection and split, resumability, corrupt input, counts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _pickapic_fixture import make_rows, png, write_shards
from prefcli.cli import app
from prefcli.data import importing, pickapic
from prefcli.data.dataset import Dataset, n_ref_variants
from prefcli.errors import DataError

PARAMS = dict(n_ref=4, min_liked=10, val_users=2, test_users=4, seen_test_frac=0.4, name="fixture")


def _params(**kw) -> pickapic.BuildParams:
    return pickapic.BuildParams(**{**PARAMS, **kw})


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pap") / "shards"
    write_shards(d)
    return d


@pytest.fixture(scope="module")
def built(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built") / "ds"
    pickapic.build(str(source), out, _params(), progress=False)
    return out


def _tree_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _image_sets(pairs) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for p in pairs:
        out.setdefault(p.split, set()).update((p.liked_image_id, p.disliked_image_id))
    return out


def test_counts_in_dataset_json_match_data_info_and_the_files(built):
    res = CliRunner().invoke(app, ["data", "info", str(built), "--format", "json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    shown = json.loads(res.stdout)["results"]
    info = json.loads((built / "dataset.json").read_text())
    assert shown["counts"] == info["counts"]
    assert shown["build"]["n_ref"] == 4 and shown["build"]["min_liked"] == 10
    # The counts are what the files hold.
    ds = Dataset.open(built)
    pairs = ds.pairs()
    images = _image_sets(pairs)
    for row in shown["splits"]:
        s = row["split"]
        sp = [p for p in pairs if p.split == s]
        assert row["pairs"] == len(sp) > 0
        assert row["users"] == len({p.user_id for p in sp})
        assert row["images"] == len(images[s])
    test = [p for p in pairs if p.split == "test"]
    seen_imgs = {i for p in test if p.seen for i in (p.liked_image_id, p.disliked_image_id)}
    assert info["counts"]["splits"]["test"]["seen_images"] == len(seen_imgs) > 0
    assert info["counts"]["splits"]["test"]["seen_users"] == 2 and info["counts"]["splits"]["test"]["unseen_users"] == 2
    for split in ("val", "test"):
        for protocol in ("1v1", "1v3"):
            targets = {r["target_id"] for r in ds.task_rows(split, protocol, 4)}
            assert info["counts"]["tasks"][split][protocol] == len(targets) > 0
    # Every stored image is referenced, and every referenced image is stored.
    stored = {p.name for p in (built / "images").rglob("*") if p.is_file()}
    assert stored == set().union(*images.values())
    assert info["image_store"]["images"] == len(stored)
    # Table output works too.
    res = CliRunner().invoke(app, ["data", "info", str(built)], catch_exceptions=False)
    assert res.exit_code == 0 and "train" in res.stdout and "min_liked" in res.stdout


def test_selection_follows_the_paper_protocol(built, source):
    ds = Dataset.open(built)
    pairs = ds.pairs()
    rows = make_rows()
    by_rid = {str(r["ranking_id"]): r for r in rows}
    liked_uids: dict[int, set[str]] = {}
    for r in rows:
        if (
            r["has_label"]
            and r["are_different"]
            and r["label_0"] != r["label_1"]
            and r["image_0_uid"] != r["image_1_uid"]
        ):
            liked_uids.setdefault(r["user_id"], set()).add(
                r["image_0_uid"] if r["label_0"] > r["label_1"] else r["image_1_uid"]
            )
    eligible = {str(u) for u, s in liked_uids.items() if len(s) >= 10}
    assert {p.user_id for p in pairs} == eligible
    assert len(eligible) == 16  # the 3 users with few liked images are out
    for p in pairs:
        r = by_rid[p.pair_id]
        assert r["has_label"] and r["are_different"] and r["label_0"] != r["label_1"]
        liked_bytes = r["jpg_0"] if r["label_0"] > r["label_1"] else r["jpg_1"]
        assert hashlib.sha256(liked_bytes).hexdigest() == p.liked_image_id
        assert p.prompt == r["caption"]
    assert len({p.pair_id for p in pairs}) == len(pairs)  # the repeated ranking id is kept once
    info = ds.info
    assert info["source_stats"]["duplicate_pairs"] == 1
    assert info["source_stats"]["pairs_with_identical_images"] == 2  # same bytes under two uids: not a comparison


def test_user_split_seen_and_unseen(built):
    ds = Dataset.open(built)
    pairs = ds.pairs()
    users = {s: set(ds.users(s)) for s in ("train", "val", "test")}
    assert len(users["val"]) == 2 and len(users["test"]) == 4
    assert not users["val"] & users["train"] and not users["val"] & users["test"]
    seen = set(ds.users("test", seen=True))
    unseen = set(ds.users("test", seen=False))
    assert len(seen) == 2 and len(unseen) == 2 and not seen & unseen
    assert not unseen & users["train"], "unseen test users must have no training pairs"
    assert seen <= users["train"], "seen test users also have training pairs"
    train_images = _image_sets(pairs)["train"]
    seen_test_images = {
        i for p in pairs if p.split == "test" and p.seen for i in (p.liked_image_id, p.disliked_image_id)
    }
    assert seen_test_images and not seen_test_images & train_images
    assert all(p.seen is None for p in pairs if p.split != "test")


def test_tasks_never_show_a_candidate_in_their_own_history(built):
    ds = Dataset.open(built)
    by_id = {p.pair_id: p for p in ds.pairs()}
    liked_by_user: dict[str, set[str]] = {}
    for p in by_id.values():
        liked_by_user.setdefault((p.user_id, p.split), set()).add(p.liked_image_id)
    assert n_ref_variants(4) == (1, 2, 4)
    for split in ("val", "test"):
        for protocol, n_cand in (("1v1", 2), ("1v3", 4)):
            full = {r["target_id"]: r for r in ds.task_rows(split, protocol, 4)}
            assert full
            for k in (1, 2):
                small = ds.task_rows(split, protocol, k)
                assert {r["target_id"] for r in small} == set(full), "N_ref variants share their targets"
                for r in small:
                    f = full[r["target_id"]]
                    assert r["history_pair_ids"] == f["history_pair_ids"][:k]
                    assert r["candidate_image_ids"] == f["candidate_image_ids"] and r["liked_index"] == f["liked_index"]
            for r in full.values():
                cands = r["candidate_image_ids"]
                assert len(cands) == len(set(cands)) == n_cand
                target = by_id[r["target_pair_id"]]
                assert cands[r["liked_index"]] == target.liked_image_id and target.disliked_image_id in cands
                assert len(r["history_pair_ids"]) == 4 and r["target_pair_id"] not in r["history_pair_ids"]
                for pid in r["history_pair_ids"]:
                    h = by_id[pid]
                    assert h.user_id == r["user_id"] and h.split == split
                    assert h.liked_image_id not in cands and h.disliked_image_id not in cands
                if protocol == "1v3":
                    extra = [c for c in cands if c not in (target.liked_image_id, target.disliked_image_id)]
                    assert not set(extra) & liked_by_user[(r["user_id"], split)], "distractors never won for this user"
    # The liked candidate is not always first.
    assert len({r["liked_index"] for r in ds.task_rows("test", "1v3", 4)}) > 1


def test_interrupted_builds_resume_to_the_identical_dataset(built, source, tmp_path, monkeypatch):
    out = tmp_path / "ds"

    def crash_after(phase_wanted, index_wanted):
        def hook(phase, index):
            if phase == phase_wanted and index == index_wanted:
                raise KeyboardInterrupt

        return hook

    # 1: killed in pass 1 after shard 1.
    monkeypatch.setattr(pickapic, "_after_shard", crash_after("pass1", 1))
    with pytest.raises(KeyboardInterrupt):
        pickapic.build(str(source), out, _params(), progress=False)
    assert not out.exists() and (tmp_path / "ds.partial").is_dir()
    # 2: killed in the middle of a pass-2 shard, some of its images already written.
    finished: list[int] = []
    monkeypatch.setattr(pickapic, "_after_shard", lambda phase, i: finished.append(i) if phase == "pass2" else None)
    real_put = importing.ImageStore.put
    calls = {"n": 0}

    def flaky_put(self, cid, data):
        if len(finished) == 2:  # in the third shard, after 20 images
            calls["n"] += 1
            if calls["n"] == 20:
                raise KeyboardInterrupt
        return real_put(self, cid, data)

    monkeypatch.setattr(importing.ImageStore, "put", flaky_put)
    with pytest.raises(KeyboardInterrupt):
        pickapic.build(str(source), out, _params(), progress=False)
    journal = json.loads((tmp_path / "ds.partial" / ".work" / "progress.json").read_text())
    assert len(journal["pass1"]) == 4 and len(journal["pass2"]) == 2
    # A rerun with other settings refuses to mix them into the unfinished build.
    monkeypatch.setattr(importing.ImageStore, "put", real_put)
    with pytest.raises(DataError, match="other settings"):
        pickapic.build(str(source), out, _params(seed=5), progress=False)
    # 3: the same command finishes it, skipping what was done.
    done_before = set(journal["pass2"])
    seen_shards = []
    monkeypatch.setattr(pickapic, "_after_shard", lambda phase, i: seen_shards.append((phase, i)))
    res = pickapic.build(str(source), out, _params(), progress=False)
    assert not res.already_built and not (tmp_path / "ds.partial").exists() and not (out / ".work").exists()
    assert all(phase == "pass2" for phase, _ in seen_shards) and len(seen_shards) == 4 - len(done_before)
    assert _tree_hashes(out) == _tree_hashes(built)
    # 4: a rerun on the finished dataset says it is done and changes nothing.
    again = pickapic.build(str(source), out, _params(), progress=False)
    assert again.already_built and _tree_hashes(out) == _tree_hashes(built)


def test_truncated_shard_and_broken_image_are_reported_and_skipped(tmp_path):
    rows = make_rows()
    victim = next(
        i for i, r in enumerate(rows) if r["user_id"] == 500 and r["has_label"] and r["label_0"] != r["label_1"]
    )
    import numpy as np

    good = png(np.random.default_rng(9))
    rows[victim] = dict(rows[victim], jpg_1=good[: len(good) // 2])  # a truncated PNG
    src = tmp_path / "src"
    paths = write_shards(src, rows=rows, n_shards=5)
    data = paths[3].read_bytes()
    paths[3].write_bytes(data[: len(data) // 2])  # a download cut short
    (src / "notes.parquet").write_bytes(b"")  # an empty file named .parquet: corrupt too
    out = tmp_path / "ds"
    res = CliRunner().invoke(app, ["data", "pickapic", "--source", str(src), "--out", str(out), "--n-ref", "4", "--min-liked", "10",
                                   "--val-users", "2", "--test-users", "4", "--no-progress", "--format", "json"], catch_exceptions=False)  # fmt: skip
    assert res.exit_code == 0, res.output
    rows_shown = json.loads(res.stdout)["results"]["rows"]
    assert [r["split"] for r in rows_shown] == ["train", "val", "test"]
    assert "problem(s) met and skipped" in res.stderr and paths[3].name in res.stderr
    info = json.loads((out / "dataset.json").read_text())
    problems = info["problems"]
    assert info["problems_total"] == len(problems) == 3
    shard_problems = {p["shard"] for p in problems if p["row"] is None}
    assert shard_problems == {paths[3].name, "notes.parquet"}
    row_problem = next(p for p in problems if p["row"] is not None)
    assert row_problem["pair_id"] == str(rows[victim]["ranking_id"]) and "jpg_1" in row_problem["reason"]
    assert info["source_stats"]["shards_skipped"] == 2 and info["source_stats"]["rows_with_broken_images"] == 1
    pair_ids = {p.pair_id for p in Dataset.open(out).pairs()}
    assert str(rows[victim]["ranking_id"]) not in pair_ids and len(pair_ids) > 100


def test_same_seed_same_split_other_seed_other_split(built, source, tmp_path):
    again = tmp_path / "again"
    pickapic.build(str(source), again, _params(), progress=False)
    assert _tree_hashes(again) == _tree_hashes(built)
    other = tmp_path / "other"
    pickapic.build(str(source), other, _params(seed=1, hold_out="all"), progress=False)
    a, b = Dataset.open(built), Dataset.open(other)
    assert (set(a.users("test")), set(a.users("val"))) != (set(b.users("test")), set(b.users("val")))
    images = _image_sets(b.pairs())
    assert not (images["val"] | images["test"]) & images["train"]  # hold-out "all"


def test_bad_sources_and_outputs_are_clear_errors(tmp_path, source, built, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="offline"):
        pickapic.build("yuvalkirstain/pickapic_v2", tmp_path / "hub", progress=False)
    with pytest.raises(DataError, match="source not found"):
        pickapic.build(str(tmp_path / "nope"), tmp_path / "x", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no parquet shards"):
        pickapic.build(str(tmp_path / "empty"), tmp_path / "x", progress=False)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file.txt").write_text("mine")
    with pytest.raises(DataError, match="not a prefcli dataset"):
        pickapic.build(str(source), busy, _params(), progress=False)
    with pytest.raises(DataError, match="eligible users"):
        pickapic.build(str(source), tmp_path / "y", _params(val_users=10, test_users=10), progress=False)
    with pytest.raises(DataError, match="min-liked"):
        pickapic.build(str(source), tmp_path / "z", _params(min_liked=1000), progress=False)
    res = CliRunner().invoke(
        app, ["data", "pickapic", "--source", str(source), "--out", str(built), "--no-progress"], catch_exceptions=False
    )
    assert res.exit_code == 0 and "already built" in res.stderr


def test_the_synthetic_world_goes_through_the_same_builder(tmp_path):
    from prefcli.data.synthetic import WorldConfig, write_world

    cfg = WorldConfig.from_preset(
        "default", n_users=20, pairs_per_user=16, image_size=16, n_prompts=8, images_per_prompt=8, rows_per_shard=100
    )
    write_world(tmp_path / "world", cfg, progress=False)
    out = tmp_path / "ds"
    res = CliRunner().invoke(app, ["data", "pickapic", "--source", str(tmp_path / "world"), "--out", str(out), "--n-ref", "4", "--min-liked", "6",
                                   "--val-users", "2", "--test-users", "4", "--no-progress", "--format", "json"], catch_exceptions=False)  # fmt: skip
    assert res.exit_code == 0, res.output
    ds = Dataset.open(out)
    info = ds.info
    assert (
        info["problems_total"] == 0 and info["source_stats"]["shards"] == 4
    )  # world.json's side tables are not shards
    assert info["build"]["hold_out"] == "user"  # the default for a synthetic world (one shared image pool)
    assert set(info["source"]["ignored_files"]) >= {"users.parquet", "images.parquet"}
    assert info["counts"]["eligible_users"] == 20 and info["counts"]["splits"]["train"]["pairs"] > 0
    pairs = ds.pairs()
    seen = set(ds.users("test", seen=True))
    assert seen and not set(ds.users("test", seen=False)) & set(ds.users("train"))
    for u in seen:  # hold-out "user": a seen user's test images never in that user's training pairs
        mine = [p for p in pairs if p.user_id == u]
        test_imgs = {i for p in mine if p.split == "test" for i in (p.liked_image_id, p.disliked_image_id)}
        train_imgs = {i for p in mine if p.split == "train" for i in (p.liked_image_id, p.disliked_image_id)}
        assert test_imgs and train_imgs and not test_imgs & train_imgs
    for t in ds.tasks("test", "1v3", 4):
        cands = {c.image_id for c in t.candidates}
        assert not cands & {i for hp in t.history.pairs for i in (hp.liked.image_id, hp.disliked.image_id)}
    assert ds.open_image(pairs[0].liked_image_id).size == (16, 16)
    # The strict rule on the shared pool: seen users' test images leave every training pair,
    # and the images only those dropped pairs used leave the store.
    strict = tmp_path / "strict"
    pickapic.build(str(tmp_path / "world"), strict, _params(min_liked=6, hold_out="seen"), progress=False)
    sds = Dataset.open(strict)
    assert sds.info["source_stats"]["train_pairs_dropped_hold_out"] > 0
    spairs = sds.pairs()
    held = {i for p in spairs if p.split == "test" and p.seen for i in (p.liked_image_id, p.disliked_image_id)}
    assert held and not held & _image_sets(spairs)["train"]
    assert {p.name for p in (strict / "images").rglob("*") if p.is_file()} == set().union(*_image_sets(spairs).values())


def test_a_crash_while_finishing_resumes_to_the_identical_dataset(built, source, tmp_path, monkeypatch):
    from prefcli.data import tasks as tasks_mod

    real = tasks_mod.iter_tasks

    def crash(*a, **k):
        raise KeyboardInterrupt
        yield  # pragma: no cover

    monkeypatch.setattr(tasks_mod, "iter_tasks", crash)
    out = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):
        pickapic.build(str(source), out, _params(), progress=False)
    assert (tmp_path / "ds.partial" / "pairs.parquet").is_file() and not out.exists()
    monkeypatch.setattr(tasks_mod, "iter_tasks", real)
    pickapic.build(str(source), out, _params(), progress=False)
    assert _tree_hashes(out) == _tree_hashes(built)


def test_rerun_with_other_explicit_options_is_an_error_not_the_old_dataset(source, built):
    """`--n-ref 2` on a folder built with N_ref 4 must not hand back the N_ref-4 dataset as if it were new."""
    res = CliRunner().invoke(
        app, ["data", "pickapic", "--source", str(source), "--out", str(built), "--n-ref", "2", "--no-progress"]
    )
    assert isinstance(res.exception, DataError)  # `prefcli` prints it as one error line
    assert "already built with other options" in str(res.exception) and "n_ref=2 (built with 4)" in str(res.exception)
    # The same explicit options as the build: still just reported.
    res = CliRunner().invoke(
        app,
        [
            "data",
            "pickapic",
            "--source",
            str(source),
            "--out",
            str(built),
            "--n-ref",
            "4",
            "--min-liked",
            "10",
            "--no-progress",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0 and "already built" in res.stderr
