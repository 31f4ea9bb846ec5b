"""The dataset reader: pairs, users, tasks with lazy candidates, histories, images; clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from _pickapic_fixture import write_shards
from prefcli.data import pickapic
from prefcli.data.dataset import FORMAT_VERSION, Dataset, PairRow, image_relpath
from prefcli.errors import DataError, ImageError
from prefcli.types import RankTask, UserHistory


@pytest.fixture(scope="module")
def ds_path(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reader")
    write_shards(root / "src", seed=3, n_shards=2)
    params = pickapic.BuildParams(n_ref=8, min_liked=10, val_users=2, test_users=4, seen_test_frac=0.5)
    pickapic.build(str(root / "src"), root / "ds", params, progress=False)
    return root / "ds"


def test_pairs_users_and_images(ds_path):
    ds = Dataset.open(ds_path)
    assert ds.name == "ds" and ds.n_ref == 8 and ds.info["format_version"] == FORMAT_VERSION == 2
    pairs = ds.pairs()
    assert pairs and all(isinstance(p, PairRow) for p in pairs)
    assert [p.pair_id for p in ds.iter_pairs(batch_size=7)] == [p.pair_id for p in pairs]
    assert (
        ds.pairs_table("val").num_rows == len(ds.pairs("val")) == sum(len(v) for v in ds.pairs_by_user("val").values())
    )
    assert set(ds.users()) == set(ds.users("train")) | set(ds.users("val")) | set(ds.users("test"))
    p = pairs[0]
    path = ds.image_path(p.liked_image_id)
    assert path == ds_path / image_relpath(p.liked_image_id) and path.is_file()
    img = ds.open_image(p.liked_image_id)
    assert img.mode == "RGB" and img.size == (8, 8) and max(img.getextrema()[0]) > 0
    with pytest.raises(ImageError):
        ds.open_image("0" * 64)
    with pytest.raises(DataError, match="unknown split"):
        ds.pairs("dev")


def test_tasks_are_rank_tasks_with_lazy_candidates_and_history(ds_path):
    ds = Dataset.open(ds_path)
    tasks = ds.tasks("test", "1v3")
    assert tasks and all(isinstance(t, RankTask) for t in tasks)
    t = tasks[0]
    assert t.protocol == "1v3" and t.n_ref == 8 and len(t.candidates) == 4 and isinstance(t.history, UserHistory)
    assert len(t.history) == 8 and t.history.user_id == t.user_id and t.seen in (True, False)
    c = t.candidates[t.liked_index]
    assert c._image is None  # nothing decoded until a scorer asks
    assert c.image.mode == "RGB" and c.prompt
    hp = t.history.pairs[0]
    assert hp.liked.image.mode == "RGB" and hp.pair_id and hp.prompt == hp.liked.prompt
    # Smaller N_ref: the same targets, history a prefix.
    small = {x.task_id.rsplit("-n", 1)[0]: x for x in ds.tasks("test", "1v3", n_ref=2)}
    s = small[t.task_id.rsplit("-n", 1)[0]]
    assert [p.pair_id for p in s.history.pairs] == [p.pair_id for p in t.history.pairs[:2]]
    assert [c.image_id for c in s.candidates] == [c.image_id for c in t.candidates]
    # history() rebuilds the same history from pair ids.
    again = ds.history(t.user_id, [p.pair_id for p in t.history.pairs])
    assert again.key() == t.history.key()
    with pytest.raises(DataError, match="not"):
        other = next(p for p in ds.pairs() if p.user_id != t.user_id)
        ds.history(t.user_id, [other.pair_id])
    seen = ds.tasks("test", "1v1", seen=True)
    unseen = ds.tasks("test", "1v1", seen=False)
    assert seen and unseen and len(seen) + len(unseen) == len(ds.tasks("test", "1v1"))
    assert ds.tasks("val", "1v1", 4)
    with pytest.raises(DataError, match="N_ref"):
        ds.tasks("test", "1v1", n_ref=3)
    with pytest.raises(DataError, match="protocol"):
        ds.tasks("test", "2v2")
    with pytest.raises(DataError, match="tasks exist"):
        ds.tasks("train")


def test_open_says_why_a_folder_is_not_a_dataset(tmp_path, ds_path):
    with pytest.raises(DataError, match="not found"):
        Dataset.open(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="no dataset.json"):
        Dataset.open(tmp_path / "plain")
    (tmp_path / "half.partial").mkdir()
    (tmp_path / "half").mkdir()
    with pytest.raises(DataError, match="unfinished build"):
        Dataset.open(tmp_path / "half")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "dataset.json").write_text("{not json")
    with pytest.raises(DataError, match="unreadable"):
        Dataset.open(bad)
    (bad / "dataset.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(DataError, match="newer"):
        Dataset.open(bad)
    copy = tmp_path / "copy"
    shutil.copytree(ds_path, copy)
    (copy / "tasks.parquet").unlink()
    with pytest.raises(DataError, match="tasks.parquet"):
        Dataset.open(copy)
    (copy / "tasks.parquet").write_bytes(b"garbage")
    with pytest.raises(DataError, match="unreadable parquet"):
        Dataset.open(copy).tasks()


def test_opening_a_folder_of_shards_says_how_to_build_a_dataset(tmp_path):
    import pytest

    from prefcli.data.dataset import Dataset
    from prefcli.errors import DataError

    (tmp_path / "shard-00000.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match="prefcli data pickapic --source"):
        Dataset.open(tmp_path)
