"""Synthetic-world metrics: group-balanced accuracy, the history swap, ground-truth references, gap fraction."""

from __future__ import annotations

from types import SimpleNamespace as NS

import numpy as np
import pytest

from prefcli.harness import world as W


def test_balanced_is_the_mean_of_group_accuracies():
    hits = [1, 1, 1, 1, 0, 0, 0, 1]  # group 0: 4/4, group 1: 1/4
    groups = [0, 0, 0, 0, 1, 1, 1, 1]
    assert W.balanced(hits, groups) == pytest.approx(0.625)
    # 80/20: raw is dominated by the majority, balanced is not
    hits = [1] * 8 + [0] * 2
    groups = [0] * 8 + [1] * 2
    assert W.balanced(hits, groups) == pytest.approx(0.5)
    assert np.isnan(W.balanced([], []))


def test_hits_use_the_harness_tie_rule():
    assert W.hit([0.7, 0.3], 0) and not W.hit([0.5, 0.5], 0) and not W.hit([float("nan"), 0.1], 0)


@pytest.mark.parametrize("groups", [[0, 0, 1, 1, 1, 2], [0] * 8 + [1] * 2, [3, 1, 3, 1, 0, 0, 2]])
def test_swap_donors_always_come_from_another_group(groups):
    d = W.swap_donors(list(range(len(groups))), groups)
    assert len(d) == len(groups)
    assert all(groups[j] != g for j, g in zip(d, groups))
    # every other group donates to a group with enough tasks
    g0 = [j for j, g in zip(d, groups) if g == groups[0]]
    if len([g for g in groups if g == groups[0]]) >= len(set(groups)) - 1:
        assert {groups[j] for j in g0} == set(groups) - {groups[0]}


def test_swap_donors_of_one_group_keep_the_own_history():
    assert W.swap_donors([0, 1, 2], [5, 5, 5]) == [0, 1, 2]


def test_gap_fraction():
    assert W.gap_fraction(0.8, 0.7, 0.9) == pytest.approx(0.5)
    assert W.gap_fraction(0.7, 0.7, 0.9) == pytest.approx(0.0)
    assert W.gap_fraction(0.65, 0.7, 0.9) < 0
    assert W.gap_fraction(0.8, 0.9, 0.9) is None  # the history cannot add anything
    assert W.gap_fraction(None, 0.5, 0.9) is None


def test_task_view_reads_rank_tasks_and_eval_tasks():
    from prefcli.train.data import EvalTask, HPair
    from prefcli.types import Candidate, HistoryPair, RankTask, UserHistory

    e = EvalTask("t", "7", False, [HPair("a", "b", "p")], ["c", "d"], ["p", "p"], 1)
    r = RankTask(
        "t",
        [Candidate("c"), Candidate("d")],
        1,
        UserHistory((HistoryPair(Candidate("a"), Candidate("b")),), user_id="7"),
        user_id="7",
        seen=False,
    )
    assert W.task_view(e) == W.task_view(r) == W.TaskView("7", False, ("c", "d"), 1, (("a", "b"),))


@pytest.fixture(scope="module")
def world_ds(tmp_path_factory):
    from prefcli.data.dataset import Dataset
    from prefcli.train.loop import synthetic_dataset

    world = {
        "preset": "default",
        "n_users": 40,
        "n_groups": 3,
        "pairs_per_user": 20,
        "image_size": 16,
        "n_prompts": 8,
        "images_per_prompt": 16,
        "world_seed": 5,
        "user_seed": 5,
        "temperature": 0.2,
    }
    build = {"n_ref": 8, "val_users": 4, "test_users": 12, "hold_out": "user", "seed": 0}
    return Dataset.open(synthetic_dataset(world, build, root=tmp_path_factory.mktemp("world")))


def test_references_on_a_world(world_ds):
    from prefcli.train.data import load_eval_tasks

    wdir = W.find_world(world_ds)
    assert wdir is not None and (wdir / "world.json").is_file()
    world = W.World(wdir, world_ds.users("train"))
    assert world.n_groups == 3 and world.prior.sum() == pytest.approx(1.0)
    tasks = load_eval_tasks(world_ds, "test", n_ref=8)
    rep = W.world_report(world, tasks)
    refs = rep["references"]
    assert set(refs) == set(W.REFERENCES)
    u = refs["user utility"]["all"]["balanced"]
    assert u > 0.8  # low label noise: the truth mostly agrees with the labels
    # the ceiling is the user's own utility; the Bayes group from 8 pairs is at least the population's
    assert refs["history: Bayes group"]["all"]["raw"] >= refs["population utility"]["all"]["raw"] - 0.05
    # the posterior from a user's own history puts most mass on their group
    views = [W.task_view(t) for t in tasks]
    right = np.mean([np.argmax(world.posterior(v.history)) == world.group(v.user_id) for v in views])
    assert right > 0.6
    # model + swap: a perfect reader of the history falls when it gets another group's history
    hits = refs["user utility"]["all"]
    perfect = [world.reference("user utility")(v) for v in views]
    rep2 = W.world_report(world, tasks, perfect, [not h for h in perfect])
    assert rep2["model"]["all"]["balanced"] == pytest.approx(hits["balanced"])
    assert rep2["swap"]["all"]["balanced"] == pytest.approx(1 - hits["balanced"])
    assert rep2["gap_fraction"]["unseen"] > 0


def test_logistic_reference_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    w = object.__new__(W.World)
    w._phi = {}
    feats = {f"i{k}": rng.normal(size=12) for k in range(16)}
    w.phi = feats.__getitem__
    hist = tuple((f"i{2 * k}", f"i{2 * k + 1}") for k in range(8))
    X, y = [], []
    for a, b in hist:
        d = feats[a] - feats[b]
        X += [d, -d]
        y += [1, 0]
    ref = (
        LogisticRegression(C=1.0, fit_intercept=False, tol=1e-10, max_iter=1000)
        .fit(np.asarray(X), np.asarray(y))
        .coef_[0]
    )
    np.testing.assert_allclose(W.World._logistic_weights(w, hist), ref, atol=1e-5)


def test_find_world_is_none_for_other_datasets(tmp_path):
    assert W.find_world(NS(root=tmp_path / "ds", info={})) is None
