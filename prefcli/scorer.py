"""The scorer contract.

A plugin registers a ScorerSpec (metadata plus a lazy "module:Class" factory);
nothing heavy is imported until `ScorerSpec.load()` is called. The harness owns
data, batching, caching, seeds and metrics; a scorer only turns a batch of
candidates (and, for personalized scorers, a conditioned history state) into one
float per candidate, in order.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

from prefcli.errors import DataError, HistoryError
from prefcli.types import Candidate, UserHistory

INPUTS = ("image", "prompt", "history")


@dataclass(frozen=True)
class ScorerSpec:
    name: str
    factory: str  # "package.module:Class", imported only when the scorer is used
    description: str = ""
    aliases: tuple[str, ...] = ()
    needs: frozenset[str] = frozenset({"image"})
    higher_is_better: bool = True
    trainable: bool = False
    differentiable: bool = False
    default_weights: str = ""
    install_hint: str = ""
    # Top-level modules that must be importable for the scorer to run here.
    requires: tuple[str, ...] = ()
    # Extra keyword options the factory accepts (documented in the plugin).
    plugin: str = ""
    # "pointwise" (one number per candidate) or "pairwise" (compares two; see prefcli.pairwise).
    kind: str = "pointwise"
    extra: dict = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.needs) - set(INPUTS)
        if unknown:
            raise ValueError(f"scorer {self.name!r}: unknown inputs {sorted(unknown)}; use {INPUTS}")
        if self.kind not in ("pointwise", "pairwise"):
            raise ValueError(f"scorer {self.name!r}: kind must be 'pointwise' or 'pairwise', got {self.kind!r}")
        if ":" not in self.factory:
            raise ValueError(f"scorer {self.name!r}: factory must look like 'module:Class', got {self.factory!r}")

    @property
    def uses_history(self) -> bool:
        return "history" in self.needs

    @property
    def pairwise(self) -> bool:
        return self.kind == "pairwise"

    def missing_requirements(self) -> list[str]:
        """Modules this scorer needs that are not installed (checked without importing)."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def load_class(self) -> type["Scorer"]:
        module, _, attr = self.factory.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except ImportError as e:
            hint = f" ({self.install_hint})" if self.install_hint else ""
            raise ImportError(f"scorer {self.name!r} cannot be loaded: {e}{hint}") from e
        return obj

    def load(self, weights: str | None = None, **options: Any) -> "Scorer":
        cls = self.load_class()
        # Derived scorers (e.g. probes) carry fixed factory options in extra["options"].
        scorer = cls(weights=weights or self.default_weights, **{**self.extra.get("options", {}), **options})
        scorer.spec = self
        return scorer


class Scorer:
    """Base class. Subclasses implement `score`; personalized ones also `condition`.

    Constructor keywords understood by every scorer: `weights` (a weights spec:
    "tiny", a local path, "hf-hub:org/name", an https URL), `device`, `dtype`.
    """

    spec: ScorerSpec | None = None
    #: Minimum number of history pairs a personalized scorer needs.
    min_history: ClassVar[int] = 0

    def __init__(self, weights: str | None = None, device: str = "cpu", dtype: str | None = None, **options: Any):
        if options:
            raise TypeError(f"{type(self).__name__} got unknown options: {sorted(options)}")
        self.weights = weights
        self.device = device
        self.dtype = dtype

    @property
    def weights_id(self) -> str:
        """What identifies these weights in caches and provenance."""
        return str(self.weights)

    def condition(self, history: UserHistory | None) -> Any:
        """Prepare per-user state once; history-free scorers ignore the history."""
        if self.min_history and (history is None or len(history) < self.min_history):
            found = 0 if history is None else len(history)
            raise HistoryError(
                f"{self.spec.name if self.spec else type(self).__name__} needs at least "
                f"{self.min_history} liked/disliked pair(s) of history; found {found}"
            )
        return None

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        raise NotImplementedError


class PairwiseScorer(Scorer):
    """A judge that compares two candidates (declare `kind="pairwise"` in its spec).

    Subclasses implement `compare(a, b, state) -> prefcli.pairwise.Preference`
    (and may implement `compare_batch(pairs, state)`); the harness runs a
    round-robin and scores each candidate by its wins.
    """

    def compare(self, a: Candidate, b: Candidate, state: Any = None) -> Any:
        raise NotImplementedError

    def compare_batch(self, pairs: Sequence[tuple[Candidate, Candidate]], state: Any = None) -> list:
        return [self.compare(a, b, state) for a, b in pairs]

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        name = self.spec.name if self.spec else type(self).__name__
        raise TypeError(f"{name} is a pairwise scorer: it compares two images (compare), it gives no score to one")


class EmbeddingScorer(Scorer):
    """A scorer that can also embed images; such scorers get a `<name>-probe` for free."""

    def embed_images(self, candidates: Sequence[Candidate]) -> "Any":
        """Return an (N, D) float numpy array of L2-normalized image embeddings."""
        raise NotImplementedError


def require_prompt(candidate: Candidate, scorer: str) -> str:
    """The candidate's prompt, or a clear error for scorers that judge image-text fit."""
    if candidate.prompt is None:
        where = candidate.path or candidate.image_id
        raise DataError(f"{where}: the {scorer} scorer needs the prompt the image was made from, and this candidate has none")
    return candidate.prompt


def broadcast_prompts(prompts: "Sequence[str] | str", n: int) -> list[str]:
    """One prompt per image for a differentiable `reward`: a single prompt serves all `n`."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if len(prompts) == 1 and n > 1:
        prompts = prompts * n
    if len(prompts) != n:
        raise ValueError(f"got {n} images but {len(prompts)} prompts")
    return prompts
