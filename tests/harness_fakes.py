"""Mock scorers and in-memory tasks for the harness tests (simonw/llm's MockModel habit).

The scorers count every call in `CALLS`, so tests can assert what the
harness computed and what it answered from its cache.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from prefcli.hookspecs import hookimpl
from prefcli.scorer import EmbeddingScorer, Scorer, ScorerSpec
from prefcli.types import Candidate, HistoryPair, RankTask, UserHistory

CALLS: Counter = Counter()
SCORED: list[str] = []  # image ids in the order they were scored
FAIL_AFTER: dict[str, int] = {}  # scorer -> raise on the call after this many


def quality(image_id: str) -> float:
    """A fixed pseudo-random 'quality' in [0, 1) per image id."""
    return int(hashlib.sha256(image_id.encode()).hexdigest()[:8], 16) / 2**32


def reset() -> None:
    CALLS.clear()
    SCORED.clear()
    FAIL_AFTER.clear()


def _maybe_fail(name: str) -> None:
    CALLS[f"{name}.score"] += 1
    limit = FAIL_AFTER.get(name)
    if limit is not None and CALLS[f"{name}.score"] > limit:
        raise KeyboardInterrupt(f"injected interruption in {name}")


class MockFree(Scorer):
    """History-free: score = quality(image)."""

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        _maybe_fail("mock-free")
        CALLS["mock-free.candidates"] += len(candidates)
        SCORED.extend(c.image_id for c in candidates)
        return [quality(c.image_id) for c in candidates]


class MockHistory(Scorer):
    """History-conditioned: likes images whose quality is close to the mean quality of the liked history."""

    min_history = 1

    def condition(self, history: UserHistory | None) -> Any:
        super().condition(history)
        CALLS["mock-hist.condition"] += 1
        return sum(quality(p.liked.image_id) for p in history.pairs) / len(history.pairs)

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        _maybe_fail("mock-hist")
        CALLS["mock-hist.candidates"] += len(candidates)
        return [-abs(quality(c.image_id) - state) for c in candidates]


class MockBatched(MockHistory):
    """`mock-hist`'s numbers, with `score_histories`: many (history, candidates) per call."""

    def score_histories(self, jobs: Sequence[tuple[UserHistory, Sequence[Candidate]]]) -> list[list[float]]:
        _maybe_fail("mock-batch")
        CALLS["mock-batch.histories"] += len(jobs)
        CALLS["mock-batch.candidates"] += sum(len(c) for _, c in jobs)
        taste = [sum(quality(p.liked.image_id) for p in h.pairs) / len(h.pairs) for h, _ in jobs]
        return [[-abs(quality(c.image_id) - t) for c in cands] for t, (_, cands) in zip(taste, jobs)]


class MockEmbed(EmbeddingScorer):
    """Embeddings from the image id (so `mock-emb-probe` exists); score = first coordinate."""

    def embed_images(self, candidates: Sequence[Candidate]):
        import numpy as np

        CALLS["mock-emb.embed"] += 1
        CALLS["mock-emb.embedded"] += len(candidates)
        rows = []
        for c in candidates:
            seed = int(hashlib.sha256(c.image_id.encode()).hexdigest()[:8], 16)
            v = np.random.default_rng(seed).normal(size=8)
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), 8)

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        CALLS["mock-emb.score"] += 1
        return [float(v[0]) for v in self.embed_images(candidates)]


#: The mock scorers: (name, class in this module, inputs, more ScorerSpec fields).
MOCKS = (
    ("mock-free", "MockFree", {"image", "prompt"}, {}),
    ("mock-hist", "MockHistory", {"image", "history"}, {}),
    ("mock-batch", "MockBatched", {"image", "history"}, {}),
    ("mock-emb", "MockEmbed", {"image"}, {"embedding": True}),
)


class MockPlugin:
    @hookimpl
    def register_scorers(self, register):
        for name, cls, needs, more in MOCKS:
            register(
                ScorerSpec(
                    name=name,
                    factory=f"harness_fakes:{cls}",
                    needs=frozenset(needs),
                    default_weights="mock-w",
                    **more,
                )
            )


def cand(image_id: str, prompt: str = "a prompt") -> Candidate:
    # No pixels needed: mock scorers read only the id.
    return Candidate(image_id=image_id, prompt=prompt)


def make_tasks(
    n_users: int = 6, per_user: int = 3, protocol: str = "1v1", n_ref: int = 4, max_ref: int = 8
) -> list[RankTask]:
    """Tasks whose targets do not depend on n_ref (as in a real dataset); half the users are seen."""
    n_cand = 2 if protocol == "1v1" else 4
    tasks = []
    for u in range(n_users):
        full = UserHistory(
            pairs=tuple(
                HistoryPair(cand(f"h{u}-{j}-L"), cand(f"h{u}-{j}-D"), prompt=f"p{u}-{j}", pair_id=f"{u}-{j}")
                for j in range(max_ref)
            ),
            user_id=f"user{u}",
        )
        hist = full.truncated(n_ref)
        for t in range(per_user):
            cands = [cand(f"t{u}-{t}-{c}", prompt=f"prompt {u}-{t}") for c in range(n_cand)]
            tasks.append(
                RankTask(
                    task_id=f"{protocol}-{u}-{t}",
                    candidates=cands,
                    liked_index=(u + t) % n_cand,
                    history=hist,
                    user_id=f"user{u}",
                    protocol=protocol,
                    seen=u % 2 == 0,
                    n_ref=n_ref,
                )
            )
    return tasks


class FakeDataset:
    """What the harness needs of prefcli.data.dataset.Dataset."""

    def __init__(self, n_users: int = 6, per_user: int = 3):
        self.n_users, self.per_user = n_users, per_user
        self.info = {"name": "fake", "format_version": 1, "source": "memory", "params": {"n_users": n_users}}
        self.path = "fake"

    def tasks(self, split: str = "test", protocol: str = "1v1", n_ref: int = 8) -> list[RankTask]:
        return make_tasks(self.n_users, self.per_user, protocol, n_ref)


@contextlib.contextmanager
def serving(monkeypatch: Any, dataset: Any = None) -> Iterator[Any]:
    """The mock scorers registered and every dataset opened as `dataset` (default a FakeDataset) for the block;
    afterwards the plugin is gone and the call counts are clear."""
    from prefcli import plugins
    from prefcli.harness import source

    plugins.register_plugin(MockPlugin(), name="harness-mocks")
    reset()
    monkeypatch.setattr(source, "open_dataset", lambda path: dataset if dataset is not None else FakeDataset())
    try:
        yield dataset
    finally:
        plugins.unregister_plugin(name="harness-mocks")
        reset()
