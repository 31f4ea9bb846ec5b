"""Tiny colour scorers with a known optimum, for the generation tests.

`red` prefers red: reward = mean(R) − ½(mean(G) + mean(B)), highest (1.0) on a
pure red image. `taste` is personalized: its history state is the mean colour
of the liked images minus that of the disliked ones, and the reward is the
image's mean colour along that direction; it counts its `condition` and
`reward` calls so tests can check the history is conditioned once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from prefcli.hookspecs import hookimpl
from prefcli.scorer import Scorer, ScorerSpec
from prefcli.types import Candidate, UserHistory

CALLS: Counter = Counter()


def _pixels(images: Sequence[Any]) -> Any:
    import numpy as np
    import torch

    return torch.stack([torch.from_numpy(np.asarray(im.convert("RGB"), dtype="float32") / 255).permute(2, 0, 1) for im in images])


def redness(pixels: Any) -> Any:
    m = pixels.float().mean(dim=(2, 3))
    return m[:, 0] - 0.5 * (m[:, 1] + m[:, 2])


class Red(Scorer):
    def reward(self, pixels: Any, prompts: Sequence[str]) -> Any:
        CALLS["red.reward"] += 1
        return redness(pixels)

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        return [float(v) for v in redness(_pixels([c.image for c in candidates]))]


class Green(Scorer):
    """A held-out judge: the mean of the green channel (not differentiable on purpose)."""

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        return [float(v) for v in _pixels([c.image for c in candidates]).mean(dim=(2, 3))[:, 1]]


class Taste(Scorer):
    min_history = 1

    def condition(self, history: UserHistory | None) -> Any:
        super().condition(history)
        CALLS["taste.condition"] += 1
        liked = _pixels([p.liked.image for p in history.pairs]).mean(dim=(0, 2, 3))
        disliked = _pixels([p.disliked.image for p in history.pairs]).mean(dim=(0, 2, 3))
        return liked - disliked

    def reward(self, pixels: Any, prompts: Sequence[str] | None = None, state: Any = None) -> Any:
        CALLS["taste.reward"] += 1
        return pixels.float().mean(dim=(2, 3)) @ state.to(pixels.device)

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        return [float(v) for v in _pixels([c.image for c in candidates]).mean(dim=(2, 3)) @ state]


class ColourPlugin:
    @hookimpl
    def register_scorers(self, register):
        register(ScorerSpec(name="red", factory="generate_fakes:Red", differentiable=True, default_weights="none"))
        register(ScorerSpec(name="green", factory="generate_fakes:Green", default_weights="none"))
        register(ScorerSpec(name="taste", factory="generate_fakes:Taste", needs=frozenset({"image", "history"}),
                            differentiable=True, default_weights="none"))
