"""The tiny models shipped in prefcli/train/pretrained/ load, and the history models really read the history."""

from __future__ import annotations

import pytest

from prefcli.train import pretrained


def _names():
    return pretrained.names()


def test_shipped_models_are_small_safetensors_folders():
    names = _names()
    if not names:
        pytest.skip("no shipped tiny models")
    for n in names:
        root = pretrained.path(n)
        files = [p for p in root.rglob("*") if p.is_file()]
        assert all(p.suffix in (".json", ".safetensors") for p in files), files
        assert sum(p.stat().st_size for p in files) < 5_000_000
        res = pretrained.results(n)
        assert res["config"].startswith("tiny-cpu-") and "test_1v1_top1" in res


@pytest.fixture(scope="module")
def new_users(tmp_path_factory):
    """People the shipped models never saw: same world (images, tastes), new user seed, balanced groups."""
    from prefcli.data.dataset import Dataset
    from prefcli.train.data import load_eval_tasks
    from prefcli.train.loop import synthetic_dataset

    world = {
        "preset": "opposed",
        "n_users": 16,
        "pairs_per_user": 24,
        "image_size": 32,
        "world_seed": 0,
        "user_seed": 7,
        "group_weights": [0.5, 0.5],
    }
    build = {"n_ref": 8, "val_users": 2, "test_users": 12, "seen_frac": 0.0, "hold_out": "user", "seed": 0}
    ds_path = synthetic_dataset(world, build, root=tmp_path_factory.mktemp("newusers"))
    ds = Dataset.open(ds_path)
    from prefcli.data.synthetic import load_truth

    truth = load_truth(ds_path.parent / "world")
    tasks = load_eval_tasks(ds, "test", n_ref=8)
    groups = [truth.user_group[int(t.user_id)] for t in tasks]
    return ds, tasks, groups


@pytest.mark.parametrize("name", ["tiny-opposed-cp", "tiny-opposed-tokens"])
def test_history_model_reads_the_history_of_new_users(name, new_users):
    if name not in _names():
        pytest.skip(f"{name} is not shipped")
    from prefcli.train.checkpoint import load_checkpoint
    from prefcli.train.data import PixelStore
    from prefcli.train.loop import score_tasks, top1_correct

    ds, tasks, groups = new_users
    vlm = load_checkpoint(name)
    store = PixelStore(ds, vlm.preprocess, 64)
    # another group's history for every task (round robin over that group's tasks)
    other = {g: [t for t, h in zip(tasks, groups) if h != g] for g in set(groups)}
    swapped = [other[g][i % len(other[g])].history for i, g in enumerate(groups)]
    own = score_tasks(vlm, tasks, store)
    swap = score_tasks(vlm, tasks, store, history_of=lambda i: swapped[i])
    acc = sum(top1_correct(s, t.liked_index) for s, t in zip(own, tasks)) / len(tasks)
    acc_swap = sum(top1_correct(s, t.liked_index) for s, t in zip(swap, tasks)) / len(tasks)
    print(f"{name}: own history {acc:.3f}, swapped {acc_swap:.3f}, {len(tasks)} tasks")
    assert len(set(groups)) == 2 and len(tasks) > 100
    assert acc > 0.7, acc
    assert acc_swap < 0.4, acc_swap  # the same images, another group's history: the ranking flips
