"""`blend` (issue 21): z(general) + w·z(personal), w per person by leave-one-out, through the one runner."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

import harness_fakes as fakes
from cli_runner import run_cli
from prefcli import plugins
from prefcli.errors import OptionError
from prefcli.harness.cache import CacheDir
from prefcli.harness.runner import ScorerHandle, run_scorer
from prefcli.hookspecs import hookimpl
from prefcli.scorer import Scorer, ScorerSpec
from prefcli.types import Candidate, HistoryPair, RankTask, UserHistory
from prefcli_blend import POPULATION_WEIGHT, weighting

#: (history image ids the personal scorer was conditioned on, candidate ids it then scored)
SEEN: list[tuple[frozenset, tuple]] = []


class SpyPersonal(Scorer):
    """Scores −quality (the opposite of mock-free) and records what it saw and what it graded."""

    min_history = 1

    def condition(self, history: UserHistory | None) -> Any:
        super().condition(history)
        return frozenset(c.image_id for c in history.images())

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        SEEN.append((state, tuple(c.image_id for c in candidates)))
        return [-fakes.quality(c.image_id) for c in candidates]


class Plugin:
    @hookimpl
    def register_scorers(self, register):
        register(
            ScorerSpec(
                name="spy-personal",
                factory=f"{__name__}:SpyPersonal",
                needs=frozenset({"image", "history"}),
                default_weights="spy-w",
            )
        )


@pytest.fixture
def mocks():
    plugins.register_plugin(fakes.MockPlugin(), name="harness-mocks")
    plugins.register_plugin(Plugin(), name="blend-spy")
    fakes.reset()
    SEEN.clear()
    yield fakes
    plugins.unregister_plugin(name="blend-spy")
    plugins.unregister_plugin(name="harness-mocks")
    fakes.reset()


def _ids(n: int, prefix: str) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def _history(general_right: bool, n: int = 6, user: str = "u") -> UserHistory:
    """Pairs whose liked image is the one mock-free scores higher (general_right) or lower."""
    pairs = []
    for i in range(n):
        a, b = fakes.cand(f"{user}-h{i}-a", "p"), fakes.cand(f"{user}-h{i}-b", "p")
        hi, lo = (a, b) if fakes.quality(a.image_id) > fakes.quality(b.image_id) else (b, a)
        liked, disliked = (hi, lo) if general_right else (lo, hi)
        pairs.append(HistoryPair(liked, disliked, prompt="p", pair_id=f"{user}-{i}"))
    return UserHistory(pairs=tuple(pairs), user_id=user)


def _task(history: UserHistory, n_cand: int = 5, tid: str = "t") -> RankTask:
    cands = [fakes.cand(f"{tid}-c{i}", "p") for i in range(n_cand)]
    return RankTask(
        task_id=tid, candidates=cands, liked_index=0, history=history, user_id=history.user_id, n_ref=len(history)
    )


def _blend(**opts) -> ScorerHandle:
    return ScorerHandle("blend", options={"general": "mock-free", "personal": "spy-personal", **opts}, device="cpu")


# --- the arithmetic -----------------------------------------------------------------------


def test_standardize_one_candidate_and_constant_scores():
    assert weighting.standardize([3.0], [3.0]).tolist() == [0.0]  # one candidate, no pool: no scale, adds nothing
    assert weighting.standardize([2.0, 2.0, 2.0], [2.0, 2.0, 2.0]).tolist() == [0.0, 0.0, 0.0]
    z = weighting.standardize([1.0, 3.0], [1.0, 3.0, 5.0, 7.0])
    np.testing.assert_allclose(z, (np.array([1.0, 3.0]) - 4.0) / np.std([1, 3, 5, 7]))
    # With a history pool, a single candidate does get a place on the scale.
    score, zg, zp = weighting.combine([5.0], [0.9], 2.0, pool_general=[1.0, 3.0], pool_personal=[0.1, 0.5])
    assert zg[0] > 0 and zp[0] > 0 and score[0] == pytest.approx(zg[0] + 2.0 * zp[0])


def test_choose_weight_follows_who_was_right_and_shrinks():
    dg, dp = [1.0, 0.5, 2.0, 0.8], [-4.0, -4.0, -4.0, -4.0]  # general right on all, personal wrong on all, by far
    ev = weighting.choose_weight(dg, dp, population_weight=1.0, shrinkage=0.0)
    assert ev.loo_best == 0.0 and ev.weight == 0.0 and ev.loo_general == 1.0 and ev.loo_personal == 0.0
    ev = weighting.choose_weight(dg, dp, population_weight=1.0, shrinkage=4.0)
    a = (4 * 0.0 + 4 * 0.5) / 8  # shares w / (1 + w): ŵ = 0 → 0, w₀ = 1 → ½; n = k = 4
    assert ev.weight == pytest.approx(a / (1 - a))
    # Pairs that cannot tell w apart keep the population w.
    assert weighting.choose_weight([1.0, -1.0], [1.0, -1.0], population_weight=0.5, shrinkage=0.0).loo_best == 0.5
    ev = weighting.choose_weight([-x for x in dg], [-x for x in dp], population_weight=1.0, shrinkage=0.0)
    assert (
        ev.loo_best == 1.0 and ev.loo_personal == 1.0 and ev.loo_general == 0.0
    )  # w ≥ 0.75 all order every pair right
    ev = weighting.choose_weight([-x for x in dg], [-x for x in dp], population_weight=0.25, shrinkage=0.0)
    assert ev.loo_best == 0.75  # the smallest of them: the closest to this population w
    none = weighting.choose_weight([], [], population_weight=0.7, shrinkage=4.0)
    assert none.weight == 0.7 and none.loo_pairs == 0 and "population w" in none.sentence()


# --- the leave-one-out ------------------------------------------------------------------------


def test_the_personal_part_never_grades_a_pair_it_was_conditioned_on(mocks):
    hist = _history(True, n=5)
    records, stats = run_scorer(_blend(), [_task(hist)], batch_size=4)
    graded_history = [(seen, ids) for seen, ids in SEEN if any(i.startswith("u-h") for i in ids)]
    assert len(graded_history) == 5  # one pair per leave-one-out conditioning
    for seen, ids in graded_history:
        assert len(ids) == 2 and not set(ids) & seen, "a history pair was graded by a scorer conditioned on it"
        assert len(seen) == 8  # the other four pairs
    # The general part's one condition(None); the personal part: the full history once, then one per left-out pair.
    assert stats.conditioned == 1 + 1 + 5
    ev = records[0]["blend"]
    assert ev["loo_pairs"] == 5 and ev["loo_general"] == 1.0 and ev["loo_personal"] == 0.0


@pytest.mark.parametrize("general_right", [True, False])
def test_auto_weight_leans_on_whoever_ordered_this_persons_history(mocks, general_right):
    task = _task(_history(general_right, n=6), n_cand=6)
    rec = run_scorer(_blend(shrinkage="0"), [task])[0][0]
    general = [fakes.quality(c.image_id) for c in task.candidates]
    order = np.argsort(-np.asarray(rec["scores"]))
    # The spy's z is exactly −z(general), so the blend is (1 − w)·z(general): w < 1 keeps the general order.
    if general_right:  # the general scorer was right on every history pair
        assert rec["blend"]["weight"] < 1.0 and rec["blend"]["loo_general"] == 1.0
        assert order.tolist() == np.argsort(-np.asarray(general)).tolist()
    else:  # the personal scorer (−quality) was right on every history pair: its order
        assert rec["blend"]["weight"] > 1.0 and rec["blend"]["loo_personal"] == 1.0
        assert order.tolist() == np.argsort(np.asarray(general)).tolist()
    extras = rec["extras"]
    assert len(extras) == 6 and all(e["weight"] == rec["blend"]["weight"] for e in extras)
    for e, s in zip(extras, rec["scores"]):
        assert s == pytest.approx(e["z_general"] + e["weight"] * e["z_personal"])
    assert "leave-one-out over 6" in rec["note"]


def test_fixed_weight_and_a_one_pair_history(mocks):
    task = _task(_history(True, n=1), n_cand=1)
    rec = run_scorer(_blend(), [task])[0][0]
    assert rec["blend"]["loo_pairs"] == 0 and rec["blend"]["weight"] == POPULATION_WEIGHT
    assert len(rec["scores"]) == 1 and np.isfinite(rec["scores"][0])
    rec = run_scorer(_blend(weight="0.25"), [_task(_history(False, n=4))])[0][0]
    assert rec["blend"]["mode"] == "fixed" and rec["blend"]["weight"] == 0.25


# --- options, identity, cache -----------------------------------------------------------------


def test_options_are_typed_and_checked(mocks):
    spec = plugins.get_scorer_spec("blend")
    assert spec.parse_options({"weight": "1.50"}).weight == "1.5"
    for bad in ({"weight": "-1"}, {"weight": "lots"}, {"population_weight": "-0.5"}, {"nope": "1"}):
        with pytest.raises(OptionError):
            spec.parse_options(bad)
    with pytest.raises(OptionError, match="history-free"):
        plugins.load_scorer("blend", device="cpu", general="mock-hist", personal="spy-personal")
    with pytest.raises(OptionError, match="reads the history"):
        plugins.load_scorer("blend", device="cpu", general="mock-free", personal="mock-free")


def test_identity_holds_both_parts_and_the_population_weight(mocks):
    a = plugins.load_scorer("blend", device="cpu", general="mock-free", personal="spy-personal")
    ident = a.identity
    assert ident["general"]["scorer"] == "mock-free" and ident["personal"]["scorer"] == "spy-personal"
    assert ident["options"]["population_weight"] == POPULATION_WEIGHT
    b = plugins.load_scorer("blend", device="cpu", general="mock-free", personal="spy-personal", population_weight=0.25)
    c = plugins.load_scorer("blend", device="cpu", general="mock-free", personal="mock-hist")
    d = plugins.load_scorer("blend", "other-w", device="cpu", general="mock-free", personal="spy-personal")
    assert len({a.cache_key, b.cache_key, c.cache_key, d.cache_key}) == 4


def test_parts_go_through_the_score_cache_once(mocks, tmp_path):
    tasks = fakes.make_tasks(n_users=3, per_user=2, n_ref=4)
    cache = CacheDir(tmp_path)
    # The personal part alone first (a bench row of it): blend then scores nothing it already has.
    _, solo = run_scorer(ScorerHandle("mock-hist", cache=cache), tasks, cache=cache)
    blend = ScorerHandle("blend", options={"general": "mock-free", "personal": "mock-hist"}, cache=cache)
    first, s1 = run_scorer(blend, tasks, cache=cache)
    assert s1.scores_cached >= solo.candidates_scored
    again, s2 = run_scorer(
        ScorerHandle("blend", options={"general": "mock-free", "personal": "mock-hist"}, cache=cache),
        tasks,
        cache=cache,
    )
    assert s2.candidates_scored == 0 and s2.conditioned == 0
    assert [r["scores"] for r in again] == [r["scores"] for r in first]


def test_blend_is_a_bench_row(mocks, tmp_path):
    from prefcli.harness import bench

    cfg = bench.BenchConfig(
        dataset="fake",
        scorers=["mock-hist", "blend"],
        protocols=["1v3"],
        n_refs=[2, 4],
        n_boot=10,
        cache_dir=str(tmp_path / "c"),
        options={"blend": {"general": "mock-free", "personal": "mock-hist"}},
    )
    runs, prov = bench.run_bench(cfg, dataset=fakes.FakeDataset())
    rows = [r for r in runs if r["scorer"] == "blend"]
    assert [r["n_ref"] for r in rows] == [2, 4] and all(r["kind"] == "composite" for r in rows)
    assert all(0.0 <= r["metrics"]["all"]["top1"]["value"] <= 1.0 for r in rows)
    assert prov["scorers"]["blend"]["identity"]["personal"]["scorer"] == "mock-hist"


# --- rank: the practitioner default -----------------------------------------------------------------


def test_rank_defaults_to_blend_with_a_history_and_shows_why(capsys, tmp_path):
    from picture_factory import structured_images

    imgs = structured_images([(32, 32)] * 8, seed=5)
    for sub, part in (("liked", imgs[:3]), ("disliked", imgs[3:6]), ("cands", imgs[6:])):
        (tmp_path / sub).mkdir()
        for i, im in enumerate(part):
            im.save(tmp_path / sub / f"{i}.png")
    prompts = {f"{sub}/{i}.png": f"a picture {sub} {i}" for sub in ("liked", "disliked", "cands") for i in range(3)}
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    code, out, err = run_cli(
        capsys,
        "rank",
        tmp_path / "cands",
        "--likes",
        tmp_path / "liked",
        "--dislikes",
        tmp_path / "disliked",
        "--prompts",
        tmp_path / "prompts.json",
        "--weights",
        "tiny",
        "--format",
        "json",
    )
    assert code == 0, err
    assert "with blend" in err and "blend of pickscore (general: every image has a prompt) and clip-probe" in err
    assert "leave-one-out over 3 history pair(s)" in err
    rows = json.loads(out)["results"]["ranking"]  # the one JSON envelope
    assert len(rows) == 2
    for r in rows:
        assert {
            "general",
            "personal",
            "z_general",
            "z_personal",
            "weight",
            "loo_pairs",
            "loo_general",
            "loo_personal",
        } <= set(r)
        assert r["loo_pairs"] == 3 and r["score"] == pytest.approx(r["z_general"] + r["weight"] * r["z_personal"])


def test_scorers_page_of_blend(capsys):
    code, out, err = run_cli(capsys, "scorers", "blend")
    assert code == 0, err
    assert "default each part's own" in out and "--weights is required" not in out
    for name in (
        "general",
        "personal",
        "weight",
        "population_weight",
        "shrinkage",
        "general_weights",
        "personal_weights",
    ):
        assert name in out
