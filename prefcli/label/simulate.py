"""A simulated labeller: a synthetic-world person answers from their true utility.

P(left preferred) = sigmoid((u(left) - u(right)) / temperature), the world's
own label model (prefcli.data.synthetic), so strategies can be compared on
many people without a person. Used by `bench/bench_label.py` and the tests.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np


@dataclass
class SimulatedLabeller:
    """Answers for one world user: `utility[i]` is u(image i) of the pool, `temperature` the world's noise."""

    utility: np.ndarray
    temperature: float
    seed: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(f"simulated|{self.seed}")

    def p_prefers(self, a: int, b: int) -> float:
        x = (float(self.utility[a]) - float(self.utility[b])) / self.temperature
        return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))

    def answer(self, a: int, b: int) -> str:
        """'left' (a) or 'right' (b), sampled with the world's label noise."""
        return "left" if self._rng.random() < self.p_prefers(a, b) else "right"


def world_user(cfg, index: int):
    """(group, weight vector) of user `index` of a world config (a new-user world: pick its user_seed)."""
    from prefcli.data.synthetic import group_weight_vectors, user_groups, user_weights

    W = group_weight_vectors(cfg)
    g = int(user_groups(cfg)[index])
    return g, user_weights(cfg, W, g, index)


def simulate(
    strategy, labeller: SimulatedLabeller, groups: list[list[int]], n_labels: int, on_label=None
) -> list[tuple[int, int, str]]:
    """Run `n_labels` rounds of `strategy` against `labeller`; returns (a, b, choice) per label.

    `on_label(k, answers)` is called after each label (k = labels so far).
    """
    from prefcli.label.strategies import LabelState

    state = LabelState(groups=groups)
    out: list[tuple[int, int, str]] = []
    for k in range(n_labels):
        prop = strategy.next_pair(state)
        if prop is None:
            break
        choice = labeller.answer(prop.a, prop.b)
        state.record(prop.a, prop.b, 1.0 if choice == "left" else 0.0)
        out.append((prop.a, prop.b, choice))
        if on_label is not None:
            on_label(k + 1, out)
    return out
