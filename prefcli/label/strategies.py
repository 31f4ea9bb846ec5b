"""Which pair to show next. A strategy is a small interface, so others can be added.

`next_pair(state)` gets what has been shown and answered and returns a
`Proposal` (two pool indices of the same prompt, never a pair shown before,
each image under its appearance cap) or None when the pool has run out.

- `random`: a warm start that links every image of each prompt into one
  comparison chain (consecutive images of a random order, the prompts taken
  in turn), then random same-prompt pairs.
- `active`: after a short warm start (the first links of the same chain),
  the pair with the largest expected information about this person's taste
  under the pairwise model (`prefcli.label.model.information`), refitted
  after every label.
"""

from __future__ import annotations

import random as _random
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from prefcli.label.model import PairModel, information


@dataclass
class Proposal:
    a: int
    b: int
    p_a: float | None = None  # the model's P(a preferred to b) when it was chosen


@dataclass
class LabelState:
    """What a strategy may look at: the pool's prompt groups, what was shown and answered."""

    groups: list[list[int]]
    shown: set[frozenset] = field(default_factory=set)  # every pair ever shown, answered or skipped
    appearances: dict[int, int] = field(default_factory=dict)
    answers: list[tuple[int, int, float]] = field(default_factory=list)  # (a, b, P(a preferred) observed)

    def record(self, a: int, b: int, y: float | None) -> None:
        self.shown.add(frozenset((a, b)))
        self.appearances[a] = self.appearances.get(a, 0) + 1
        self.appearances[b] = self.appearances.get(b, 0) + 1
        if y is not None:
            self.answers.append((a, b, y))


class Strategy(Protocol):
    name: str

    def next_pair(self, state: LabelState) -> Proposal | None: ...


def chain(groups: list[list[int]], seed: int) -> list[tuple[int, int]]:
    """Links joining every image of each group in one chain, the groups taken in turn."""
    rng = _random.Random(f"chain|{seed}")
    per_group = []
    for g in groups:
        order = list(g)
        rng.shuffle(order)
        per_group.append([(order[i], order[i + 1]) for i in range(len(order) - 1)])
    rng.shuffle(per_group)
    out = []
    for i in range(max((len(p) for p in per_group), default=0)):
        out += [p[i] for p in per_group if i < len(p)]
    return out


class _Base:
    def __init__(self, seed: int = 0, max_appearances: int = 4, model: PairModel | None = None):
        self.seed, self.max_appearances, self.model = seed, max_appearances, model
        self._chain: list[tuple[int, int]] | None = None

    def _open(self, state: LabelState, a: int, b: int) -> bool:
        cap = self.max_appearances
        return (
            a != b
            and frozenset((a, b)) not in state.shown
            and state.appearances.get(a, 0) < cap
            and state.appearances.get(b, 0) < cap
        )

    def _warm(self, state: LabelState, limit: int | None) -> Proposal | None:
        if self._chain is None:
            self._chain = chain(state.groups, self.seed)
        links = self._chain if limit is None else self._chain[:limit]
        for a, b in links:
            if self._open(state, a, b):
                return self._with_p(state, a, b)
        return None

    def _with_p(self, state: LabelState, a: int, b: int) -> Proposal:
        p = None
        if self.model is not None:
            self._refit(state)
            p = self.model.prob(a, b)
        return Proposal(a, b, p)

    def _refit(self, state: LabelState) -> None:
        key = tuple(state.answers)  # an undo can shorten and regrow the list: compare contents
        if getattr(self, "_fitted_on", None) != key:
            ans = state.answers
            self.model.fit(
                np.array([x[0] for x in ans], int),
                np.array([x[1] for x in ans], int),
                np.array([x[2] for x in ans], float),
            )
            self._fitted_on = key

    def _open_pairs(self, state: LabelState, group: list[int]) -> tuple[np.ndarray, np.ndarray]:
        idx = np.array([i for i in group if state.appearances.get(i, 0) < self.max_appearances], int)
        if idx.size < 2:
            return np.zeros(0, int), np.zeros(0, int)
        ia, ib = np.triu_indices(idx.size, 1)
        a, b = idx[ia], idx[ib]
        if state.shown:
            shown = np.array([_code(*sorted(p)) for p in state.shown if len(p) == 2], np.int64)
            keep = ~np.isin(_code(np.minimum(a, b), np.maximum(a, b)), shown)
            a, b = a[keep], b[keep]
        return a, b


def _code(lo, hi):
    return np.asarray(lo, np.int64) * (1 << 31) + np.asarray(hi, np.int64)


class RandomStrategy(_Base):
    name = "random"

    def next_pair(self, state: LabelState) -> Proposal | None:
        warm = self._warm(state, None)
        if warm is not None:
            return warm
        rng = _random.Random(f"random|{self.seed}|{len(state.shown)}")
        groups = list(state.groups)
        rng.shuffle(groups)
        for g in groups:
            a, b = self._open_pairs(state, g)
            if a.size:
                k = rng.randrange(a.size)
                x, y = (int(a[k]), int(b[k])) if rng.random() < 0.5 else (int(b[k]), int(a[k]))
                return self._with_p(state, x, y)
        return None


class ActiveStrategy(_Base):
    """Expected information (BALD) under the Laplace posterior; see prefcli.label.model."""

    name = "active"

    def __init__(self, model: PairModel, seed: int = 0, max_appearances: int = 4, warm: int = 2):
        super().__init__(seed=seed, max_appearances=max_appearances, model=model)
        self.warm = warm

    def next_pair(self, state: LabelState) -> Proposal | None:
        if len(state.shown) < self.warm:
            warm = self._warm(state, self.warm)
            if warm is not None:
                return warm
        self._refit(state)
        best: tuple[float, int, int, float, float] | None = None
        for g in state.groups:
            a, b = self._open_pairs(state, g)
            if not a.size:
                continue
            idx = np.union1d(a, b)
            mu, cov = self.model.gram(idx)
            pa, pb = np.searchsorted(idx, a), np.searchsorted(idx, b)
            gap_mu = mu[pa] - mu[pb]
            gap_var = cov[pa, pa] + cov[pb, pb] - 2 * cov[pa, pb]
            info = information(gap_mu, gap_var)
            k = int(np.argmax(info))
            if best is None or info[k] > best[0]:
                best = (float(info[k]), int(a[k]), int(b[k]), float(gap_mu[k]), float(gap_var[k]))
        if best is None:
            return None
        _, a, b, _, _ = best
        return Proposal(a, b, self.model.prob(a, b))


STRATEGIES = ("active", "random")


def make_strategy(name: str, model: PairModel | None, *, seed: int = 0, max_appearances: int = 4) -> Strategy:
    from prefcli.errors import PrefcliError

    if name == "random":
        return RandomStrategy(seed=seed, max_appearances=max_appearances, model=model)
    if name == "active":
        if model is None:
            raise PrefcliError("the active strategy needs the pool's embeddings")
        return ActiveStrategy(model, seed=seed, max_appearances=max_appearances)
    raise PrefcliError(f"unknown --strategy {name!r}; choose from {', '.join(STRATEGIES)}")
