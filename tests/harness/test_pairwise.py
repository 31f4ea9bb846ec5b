"""The pairwise scorer kind: round-robin comparisons in the runner, eval, tables and rank."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest

import harness_fakes as fakes
from prefcli import plugins
from prefcli.harness import metrics, tables
from prefcli.harness.cache import CacheDir
from prefcli.harness.evaluate import evaluate
from prefcli.harness.runner import ScorerHandle, run_scorer
from prefcli.hookspecs import hookimpl
from prefcli.pairwise import Preference, round_robin, wins
from prefcli.scorer import PairwiseScorer, ScorerSpec

ASKED: list[tuple[str, str]] = []


def silent(image_id: str) -> bool:
    """The mock judge gives no answer when image A is one of these (about a quarter of images)."""
    return fakes.quality(image_id + "#silent") < 0.25


class MockJudge(PairwiseScorer):
    """Prefers the image of higher fixed quality; says nothing when A is 'silent'."""

    min_history = 1

    def condition(self, history):
        super().condition(history)
        fakes.CALLS["judge.condition"] += 1
        return history.key()

    def compare(self, a, b, state: Any = None) -> Preference:
        ASKED.append((a.image_id, b.image_id))
        if silent(a.image_id):
            return Preference(None, details={"error": "no <answer> tag"})
        qa, qb = fakes.quality(a.image_id), fakes.quality(b.image_id)
        return Preference(0 if qa > qb else 1, scores=(qa, qb))

    def compare_batch(self, pairs: Sequence, state: Any = None) -> list[Preference]:
        fakes.CALLS["judge.batches"] += 1
        limit = fakes.FAIL_AFTER.get("judge")
        if limit is not None and fakes.CALLS["judge.batches"] > limit:
            raise KeyboardInterrupt("injected interruption in judge")
        return [self.compare(a, b, state) for a, b in pairs]


class JudgePlugin:
    @hookimpl
    def register_scorers(self, register):
        register(
            ScorerSpec(
                name="mock-judge",
                factory=f"{__name__}:MockJudge",
                needs=frozenset({"image", "history"}),
                kind="pairwise",
                default_weights="j",
            )
        )


@pytest.fixture
def judge():
    plugins.register_plugin(JudgePlugin(), name="judge-mock")
    fakes.reset()
    ASKED.clear()
    yield
    plugins.unregister_plugin(name="judge-mock")
    fakes.reset()
    ASKED.clear()


def expected_wins(cands) -> list[float]:
    out = []
    for i, j in round_robin(len(cands)):
        a, b = cands[i].image_id, cands[j].image_id
        out.append((i, j, math.nan if silent(a) else float(fakes.quality(a) > fakes.quality(b))))
    return wins(len(cands), out)


def test_round_robin_and_wins():
    assert round_robin(2) == [(0, 1)]
    assert len(round_robin(4)) == 6
    assert wins(4, [(0, 1, 1.0), (0, 2, 0.0), (1, 3, math.nan), (2, 3, 0.5)]) == [1.0, 0.0, 1.5, 0.5]
    assert Preference.from_value(1.0).winner == 0 and Preference.from_value(0.0).winner == 1
    assert Preference.from_value(math.nan).winner is None and math.isnan(Preference(None).value)
    with pytest.raises(ValueError):
        Preference(2)


def test_spec_kind_is_checked_and_pairwise_scorers_refuse_score(judge):
    with pytest.raises(ValueError, match="kind"):
        ScorerSpec(name="x", factory="a:b", kind="listwise")
    spec = plugins.get_scorer_spec("mock-judge")
    assert spec.pairwise and not plugins.get_scorer_spec("clip").pairwise
    with pytest.raises(TypeError, match="pairwise"):
        spec.load().score([fakes.cand("x")])


@pytest.mark.parametrize("protocol", ["1v1", "1v3"])
def test_runner_scores_are_round_robin_wins(judge, protocol):
    tasks = fakes.make_tasks(4, 3, protocol)
    records, stats = run_scorer(plugins.load_scorer("mock-judge"), tasks, batch_size=5)
    n = len(tasks[0].candidates)
    assert len(ASKED) == len(tasks) * n * (n - 1) // 2 == stats.candidates_scored // 2
    # One order only, the task's: A is the earlier candidate.
    order = {c.image_id: i for t in tasks for i, c in enumerate(t.candidates)}
    assert all(order[a] < order[b] for a, b in ASKED)
    assert fakes.CALLS["judge.condition"] == 4  # once per distinct history
    for r, t in zip(records, tasks):
        assert r["kind"] == "pairwise"
        assert r["scores"] == expected_wins(t.candidates)
        assert len(r["comparisons"]) == n * (n - 1) // 2
    # A 1-vs-1 task without an answer is a tie at zero wins: a miss.
    silent_tasks = [r for r, t in zip(records, tasks) if protocol == "1v1" and silent(t.candidates[0].image_id)]
    for r in silent_tasks:
        assert r["scores"] == [0.0, 0.0] and r["comparisons"][0]["winner"] is None
        assert not metrics.hits_at(r["scores"], r["liked_index"], (1,))[1]


def test_cache_answers_a_rerun_and_an_interrupted_run_resumes(judge, tmp_path):
    tasks = fakes.make_tasks(5, 2, "1v3")
    fakes.FAIL_AFTER["judge"] = 2
    with pytest.raises(KeyboardInterrupt):
        run_scorer(ScorerHandle("mock-judge", cache=CacheDir(tmp_path)), tasks, cache=CacheDir(tmp_path), batch_size=4)
    done_before = len(ASKED)
    assert done_before == 8
    fakes.reset()
    ASKED.clear()
    cache = CacheDir(tmp_path)
    records, stats = run_scorer(ScorerHandle("mock-judge", cache=cache), tasks, cache=cache, batch_size=4)
    assert len(ASKED) == 5 * 2 * 6 - done_before and stats.scores_cached == done_before
    ASKED.clear()
    again, s2 = run_scorer(
        ScorerHandle("mock-judge", cache=CacheDir(tmp_path)), tasks, cache=CacheDir(tmp_path), batch_size=4
    )
    assert ASKED == [] and not s2.loaded_model
    assert [r["scores"] for r in again] == [r["scores"] for r in records]
    assert all(c.get("cached") for r in again for c in r["comparisons"])
    # No answer survives the cache as no answer (NaN), not as a win for B.
    assert [[c["winner"] for c in r["comparisons"]] for r in again] == [
        [c["winner"] for c in r["comparisons"]] for r in records
    ]


def test_eval_record_and_tables_say_pairwise(judge):
    tasks = fakes.make_tasks(6, 3, "1v1")
    run, records = evaluate(ScorerHandle("mock-judge"), tasks, n_boot=50, protocol="1v1", n_ref=4)
    assert run["kind"] == "pairwise"
    n_silent = sum(silent(t.candidates[0].image_id) for t in tasks)
    assert run["pairwise"] == {"comparisons": 18, "no_answer": n_silent}
    hits = [not silent(t.candidates[0].image_id) and expected_wins(t.candidates)[t.liked_index] == 1.0 for t in tasks]
    assert run["metrics"]["all"]["top1"]["value"] == pytest.approx(sum(hits) / len(hits))
    t = tables.eval_table(run)
    assert "pairwise" in t.title and f"{n_silent} without an answer" in t.note
    pointwise_run = {**run, "scorer": "other", "kind": "pointwise"}
    t1 = tables.table1([run, pointwise_run])
    assert t1.columns[1].key == "kind"
    kinds = {r["scorer"]: r.get("kind") for r in t1.rows}
    assert kinds["mock-judge"] == "pairwise" and kinds["other"] == "pointwise" and kinds["Random"] is None
    assert "round-robin" in t1.note
    assert "kind" not in [c.key for c in tables.table1([pointwise_run]).columns]


def test_rank_folder_ranks_by_wins(judge, tmp_path):
    from picture_factory import structured_images
    from prefcli.ranking import rank_folder

    cands, likes, dislikes = (tmp_path / n for n in ("cands", "likes", "dislikes"))
    for d, seed in ((cands, 1), (likes, 2), (dislikes, 3)):
        d.mkdir()
        for i, im in enumerate(structured_images([(24, 24)] * 4, seed)):
            im.save(d / f"{i}.png")
    result = rank_folder(cands, scorer="mock-judge", likes=likes, dislikes=dislikes, batch_size=2)
    assert len(ASKED) == 6 and result.total == 4
    assert any("round-robin wins over 6 comparison(s)" in n for n in result.notes)
    by_path = {r.path: r.score for r in result.ranked}
    assert sum(by_path.values()) == sum(0 if silent(a) else 1 for a, _ in ASKED)
    scores = [r.score for r in result.ranked]
    assert scores == sorted(scores, reverse=True)
