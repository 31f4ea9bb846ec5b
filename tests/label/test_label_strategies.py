"""Pair strategies of `prefcli label`: the warm-start chain, no pair twice, the appearance cap, the active choice."""

from __future__ import annotations

import numpy as np
import pytest

from prefcli.label.model import PairModel, Posterior, information, reduce
from prefcli.label.simulate import SimulatedLabeller, simulate
from prefcli.label.strategies import LabelState, RandomStrategy, chain, make_strategy

GROUPS = [list(range(0, 7)), list(range(7, 12)), list(range(12, 20))]


def _connected(links, nodes) -> bool:
    parent = {n: n for n in nodes}

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in links:
        parent[find(a)] = find(b)
    return len({find(n) for n in nodes}) == 1


def test_warm_start_links_every_image_of_each_prompt_in_one_chain():
    links = chain(GROUPS, seed=3)
    assert len(links) == sum(len(g) - 1 for g in GROUPS)  # a chain: n - 1 links per prompt, no more
    for g in GROUPS:
        mine = [link for link in links if link[0] in g]
        assert all(link[1] in g for link in mine)  # only same-prompt pairs
        assert _connected(mine, g)
    # the prompts are taken in turn, so a short session still sees every prompt
    assert {next(i for i, g in enumerate(GROUPS) if link[0] in g) for link in links[:3]} == {0, 1, 2}
    # the random strategy's first pairs are exactly that chain
    state, strat = LabelState(groups=GROUPS), RandomStrategy(seed=3, max_appearances=4)
    got = []
    for _ in range(len(links)):
        p = strat.next_pair(state)
        got.append((p.a, p.b))
        state.record(p.a, p.b, 1.0)
    assert got == links


@pytest.mark.parametrize("name", ["random", "active"])
@pytest.mark.parametrize("cap", [1, 2, 4])
def test_no_pair_twice_and_the_appearance_cap_until_the_pool_runs_out(name, cap):
    z = reduce(np.random.default_rng(0).standard_normal((20, 6)))
    strat = make_strategy(name, PairModel(z), seed=1, max_appearances=cap)
    lab = SimulatedLabeller(z @ np.ones(z.shape[1]), 0.5, seed=2)
    answers = simulate(strat, lab, GROUPS, 10_000)
    pairs = [frozenset((a, b)) for a, b, _ in answers]
    assert len(pairs) == len(set(pairs))
    counts = np.bincount([i for p in pairs for i in p], minlength=20)
    assert counts.max() <= cap
    group_of = {i: k for k, g in enumerate(GROUPS) for i in g}
    assert all(group_of[a] == group_of[b] for a, b, _ in answers)
    # it stopped only because nothing was left: no open same-prompt pair remains
    for g in GROUPS:
        open_ = [i for i in g if counts[i] < cap]
        assert all(frozenset((a, b)) in set(pairs) for a in open_ for b in open_ if a < b)


def test_information_prefers_uncertain_weights_over_a_near_coin_flip():
    # BALD: a pair the model is sure about teaches little; so does a near-duplicate pair
    # (mean gap 0 but tiny variance: the answer is noise); a gap of unknown sign teaches most.
    sure, duplicate, unknown = information(np.array([4.0, 0.0, 0.0]), np.array([0.1, 1e-4, 4.0]))
    assert unknown > sure and unknown > duplicate
    assert duplicate < 0.01
    more = information(np.array([0.0, 0.0]), np.array([1.0, 4.0]))
    assert more[1] > more[0]


def test_active_chooses_the_pair_of_largest_expected_information_on_a_known_posterior():
    # Images on the axes of a 2-d space; the posterior is sure about axis 0 (w0 = 3, tiny
    # variance) and knows nothing about axis 1. Same-prompt pairs differing along axis 1
    # are the informative ones; among them the largest difference wins.
    z = np.array([[0, 0], [1, 0], [0, 0.5], [0, 2.0], [2, 0]], float)
    model = PairModel(z)
    model.post = Posterior(np.array([3.0, 0.0]), np.diag([1e-4, 1.0]))
    strat = make_strategy("active", model, max_appearances=9)
    strat.warm = 0
    strat._refit = lambda state: None  # keep the posterior given above
    prop = strat.next_pair(LabelState(groups=[[0, 1, 2, 3, 4]]))
    # (0, 3): gap 0 +- 2 along the unknown axis; (2, 3) is smaller, (1, 3) and (3, 4) the model already knows
    assert {prop.a, prop.b} == {0, 3}
    mu, cov = model.gram(np.arange(5))
    best = max(
        ((a, b) for a in range(5) for b in range(a + 1, 5)),
        key=lambda p: information(mu[p[0]] - mu[p[1]], cov[p[0], p[0]] + cov[p[1], p[1]] - 2 * cov[p[0], p[1]]),
    )
    assert {prop.a, prop.b} == set(best)
    assert 0.0 < prop.p_a < 1.0


def test_the_model_learns_the_direction_of_a_simulated_taste():
    rng = np.random.default_rng(5)
    z = reduce(rng.standard_normal((60, 8)))
    w = rng.standard_normal(z.shape[1])
    lab = SimulatedLabeller(z @ w, 0.3, seed=1)
    a = rng.integers(0, 60, 200)
    b = (a + rng.integers(1, 60, 200)) % 60
    y = np.array([1.0 if lab.answer(int(i), int(j)) == "left" else 0.0 for i, j in zip(a, b)])
    post = PairModel(z).fit(a, b, y)
    cos = post.mean @ w / np.linalg.norm(post.mean) / np.linalg.norm(w)
    assert cos > 0.9
