"""The runner: batching, the on-disk cache, one condition() per history, resume."""

from __future__ import annotations

import pytest

import harness_fakes as fakes
from prefcli import plugins
from prefcli.errors import PrefcliError
from prefcli.harness import metrics
from prefcli.harness.cache import CacheDir
from prefcli.harness.evaluate import evaluate
from prefcli.harness.runner import ScorerHandle, run_scorer


@pytest.fixture
def mocks():
    plugin = fakes.MockPlugin()
    plugins.register_plugin(plugin, name="harness-mocks")
    fakes.reset()
    yield fakes
    plugins.unregister_plugin(name="harness-mocks")
    fakes.reset()


def _scores(records):
    return [r["scores"] for r in records]


def test_history_free_scores_each_unique_candidate_once_in_batches(mocks, tmp_path):
    # The same targets at two N_ref values: 144 candidate slots, 72 unique images.
    tasks = mocks.make_tasks(6, 3, "1v3", n_ref=2) + mocks.make_tasks(6, 3, "1v3", n_ref=8)
    scorer = plugins.load_scorer("mock-free")
    records, stats = run_scorer(scorer, tasks, cache=None, batch_size=10)
    assert mocks.CALLS["mock-free.candidates"] == 72 == stats.candidates_scored
    assert mocks.CALLS["mock-free.score"] == 8  # ceil(72 / 10)
    assert len(records) == len(tasks)
    for r, t in zip(records, tasks):
        assert r["scores"] == [mocks.quality(c.image_id) for c in t.candidates]
        assert r["n_ref"] is None  # history-free: N_ref is irrelevant


def test_second_run_is_answered_from_the_cache(mocks, tmp_path):
    tasks = mocks.make_tasks(5, 2, "1v1")
    first, s1 = run_scorer(
        ScorerHandle("mock-free", cache=CacheDir(tmp_path)), tasks, cache=CacheDir(tmp_path), batch_size=4
    )
    assert s1.candidates_scored == 20 and s1.loaded_model
    mocks.reset()
    cache = CacheDir(tmp_path)
    second, s2 = run_scorer(ScorerHandle("mock-free", cache=cache), tasks, cache=cache, batch_size=4)
    assert mocks.CALLS["mock-free.score"] == 0
    assert s2.candidates_scored == 0 and s2.scores_cached == 20
    assert not s2.loaded_model  # the weights id came from the index: no model built
    assert _scores(second) == _scores(first)
    # Other weights are another cache entry.
    third, s3 = run_scorer(ScorerHandle("mock-free", weights="other", cache=cache), tasks, cache=cache)
    assert s3.candidates_scored == 20


def test_condition_once_per_distinct_history(mocks, tmp_path):
    tasks = mocks.make_tasks(4, 3, "1v1", n_ref=2) + mocks.make_tasks(4, 3, "1v1", n_ref=4)
    distinct = {t.history.key() for t in tasks}
    assert len(distinct) == 8
    records, stats = run_scorer(plugins.load_scorer("mock-hist"), tasks, cache=CacheDir(tmp_path), batch_size=5)
    assert mocks.CALLS["mock-hist.condition"] == 8 == stats.conditioned
    assert {r["n_ref"] for r in records} == {2, 4}
    mocks.reset()
    again, s2 = run_scorer(plugins.load_scorer("mock-hist"), tasks, cache=CacheDir(tmp_path))
    assert mocks.CALLS["mock-hist.condition"] == 0 and s2.candidates_scored == 0
    assert _scores(again) == _scores(records)


@pytest.mark.parametrize("name", ["mock-free", "mock-hist"])
def test_interrupted_run_resumes_with_the_same_results(mocks, tmp_path, name):
    tasks = mocks.make_tasks(6, 3, "1v3")
    reference, _ = run_scorer(plugins.load_scorer(name), tasks, cache=None, batch_size=4)
    total = mocks.CALLS[f"{name}.candidates"]
    mocks.reset()
    mocks.FAIL_AFTER[name] = 3
    with pytest.raises(KeyboardInterrupt):
        run_scorer(plugins.load_scorer(name), tasks, cache=CacheDir(tmp_path), batch_size=4)
    done = mocks.CALLS[f"{name}.candidates"]
    assert 0 < done < total
    mocks.reset()
    resumed, stats = run_scorer(plugins.load_scorer(name), tasks, cache=CacheDir(tmp_path), batch_size=4)
    assert stats.scores_cached == done
    assert stats.candidates_scored == total - done
    assert _scores(resumed) == _scores(reference)


def test_probe_embeddings_are_batched_and_cached(mocks, tmp_path):
    tasks = mocks.make_tasks(4, 2, "1v1", n_ref=4)
    n_images = len(
        {c.image_id for t in tasks for c in t.candidates}
        | {i for t in tasks for p in t.history.pairs for i in (p.liked.image_id, p.disliked.image_id)}
    )
    handle = ScorerHandle("mock-emb-probe", cache=CacheDir(tmp_path))
    records, stats = run_scorer(handle, tasks, cache=CacheDir(tmp_path), batch_size=16)
    assert mocks.CALLS["mock-emb.embedded"] == n_images == stats.images_embedded
    assert mocks.CALLS["mock-emb.embed"] == -(-n_images // 16)
    assert all(0.0 <= s <= 1.0 for r in records for s in r["scores"])
    # New N_ref, same images: the probe refits from cached embeddings, the model is never asked.
    mocks.reset()
    more = mocks.make_tasks(4, 2, "1v1", n_ref=2)
    _, s2 = run_scorer(
        ScorerHandle("mock-emb-probe", cache=CacheDir(tmp_path)), more, cache=CacheDir(tmp_path), batch_size=16
    )
    assert mocks.CALLS["mock-emb.embedded"] == 0 and s2.embeddings_cached > 0 and s2.conditioned == 4


def test_evaluate_matches_hand_metrics(mocks):
    tasks = mocks.make_tasks(6, 3, "1v3")
    handle = ScorerHandle("mock-free")
    run, records = evaluate(handle, tasks, n_boot=200, seed=7, protocol="1v3")
    hits = [metrics.liked_rank([mocks.quality(c.image_id) for c in t.candidates], t.liked_index) <= 2 for t in tasks]
    assert run["metrics"]["all"]["top2"]["value"] == pytest.approx(sum(hits) / len(hits))
    assert run["metrics"]["seen"]["top1"]["n_tasks"] == 9
    assert run["weights_id"] == "mock-w" and run["n_ref"] is None
    again, _ = evaluate(handle, tasks, n_boot=200, seed=7, protocol="1v3")
    assert again["metrics"] == run["metrics"]  # seeded bootstrap


def test_wrong_number_of_scores_is_an_error(mocks):
    class Bad(fakes.MockFree):
        def score(self, candidates, state=None):
            return [0.0]

    bad = Bad(weights="x")
    bad.spec = plugins.get_scorer_spec("mock-free")
    with pytest.raises(PrefcliError, match="returned 1 scores for 2"):
        run_scorer(bad, mocks.make_tasks(1, 1), batch_size=8)


def test_a_scorer_that_batches_across_histories_gets_many_small_histories_per_call(mocks, tmp_path):
    # 12 histories of 2 candidates (1v1) and 2 histories of 3 tasks x 4 candidates (1v3: 12 candidates each).
    tasks = mocks.make_tasks(12, 1, "1v1") + mocks.make_tasks(2, 3, "1v3", n_ref=2)
    want, _ = run_scorer(plugins.load_scorer("mock-hist"), tasks, cache=None, batch_size=10)
    mocks.reset()
    got, stats = run_scorer(plugins.load_scorer("mock-batch"), tasks, cache=CacheDir(tmp_path), batch_size=10)
    assert _scores(got) == _scores(want)
    # Small histories together, ~batch_size candidates a call: 12 x 2 = 24 candidates in calls of 10, 10, 4.
    assert mocks.CALLS["mock-batch.score"] == 3 and mocks.CALLS["mock-batch.histories"] == 12
    # A history with batch_size candidates or more is conditioned once and scored in batches, as before.
    assert mocks.CALLS["mock-hist.condition"] == 2 and mocks.CALLS["mock-hist.candidates"] == 24
    assert stats.conditioned == 14 and stats.candidates_scored == 48
    mocks.reset()
    again, s2 = run_scorer(plugins.load_scorer("mock-batch"), tasks, cache=CacheDir(tmp_path), batch_size=10)
    assert s2.candidates_scored == 0 and s2.scores_cached == 48 and _scores(again) == _scores(want)
    # batch_histories=False: history by history, the same numbers.
    mocks.reset()
    per, _ = run_scorer(plugins.load_scorer("mock-batch"), tasks, cache=None, batch_size=10, batch_histories=False)
    assert mocks.CALLS["mock-batch.score"] == 0 and mocks.CALLS["mock-hist.condition"] == 14
    assert _scores(per) == _scores(want)


def test_an_interrupted_batched_run_resumes_with_the_same_results(mocks, tmp_path):
    tasks = mocks.make_tasks(15, 1, "1v1")
    reference, _ = run_scorer(plugins.load_scorer("mock-hist"), tasks, cache=None, batch_size=4)
    mocks.reset()
    mocks.FAIL_AFTER["mock-batch"] = 3
    with pytest.raises(KeyboardInterrupt):
        run_scorer(plugins.load_scorer("mock-batch"), tasks, cache=CacheDir(tmp_path), batch_size=4)
    assert mocks.CALLS["mock-batch.candidates"] == 12  # three calls of two histories stored before the fourth failed
    mocks.reset()
    resumed, stats = run_scorer(plugins.load_scorer("mock-batch"), tasks, cache=CacheDir(tmp_path), batch_size=4)
    assert stats.scores_cached == 12 and stats.candidates_scored == 18
    assert _scores(resumed) == _scores(reference)


def test_a_batched_scorer_returning_the_wrong_shape_is_an_error(mocks, monkeypatch):
    tasks = mocks.make_tasks(3, 1, "1v1")
    scorer = plugins.load_scorer("mock-batch")
    monkeypatch.setattr(scorer, "score_histories", lambda jobs: [[0.5] for _ in jobs])
    with pytest.raises(PrefcliError, match="returned 1 scores for 2 images"):
        run_scorer(scorer, tasks, cache=None, batch_size=8)
