"""The scorer contract.

A plugin registers a ScorerSpec (metadata plus a lazy "module:Class" factory);
nothing heavy is imported until `ScorerSpec.load()` is called. The harness owns
data, batching, caching, seeds and metrics; a scorer only turns a batch of
candidates (and, for personalized scorers, a conditioned history state) into one
float per candidate, in order.

The whole API of a scorer class (`Scorer`), kept small on purpose:

- construction: `Scorer(weights, device, dtype, *, spec, options)`. `ScorerSpec.load`
  resolves everything once: `weights` (the spec's `default_weights` when none is
  given), `device` (a concrete torch device, never "auto"), `dtype` (a canonical
  name, or None for the scorer's choice), `spec` and `options` (an instance of
  the spec's typed Options class, already validated). A scorer reads
  `self.options.NAME`; it never re-declares an option as an `__init__` keyword,
  never re-parses a value and never restates its default weights
  (tests/scorers/test_scorer_init_contract.py checks all three). Derived scorers (probes)
  also get `embedder=`, the scorer they build on, built by the loader.
- `condition(history) -> state` and `score(candidates, state) -> list[float]`:
  the two a scorer implements (history-free scorers only `score`).
- `score_histories(jobs)`: many `(history, candidates)` at once; the default
  loops `condition`/`score`. Overriding it (the VLM family) makes
  `batches_histories` true, and the runner then sends many short histories per call.
- `modules()`: the torch modules the scorer runs (default: none). Provenance
  (`used`, the dtype and device actually loaded) and `generate`'s parameter
  freezing read it; nothing walks attribute names.
- optional: `reward(pixels, prompts, state)` (differentiable scorers),
  `embed_images` (EmbeddingScorer), `compare` (PairwiseScorer), `weights_id`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from prefcli.errors import DataError, HistoryError, OptionError
from prefcli.options import Options
from prefcli.types import Candidate, UserHistory

if TYPE_CHECKING:  # pragma: no cover
    import torch

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
    #: True when the scorer implements `reward(pixels, prompts, state)` (see `Scorer.reward`).
    differentiable: bool = False
    default_weights: str = ""
    install_hint: str = ""
    # Top-level modules that must be importable for the scorer to run here.
    requires: tuple[str, ...] = ()
    plugin: str = ""
    #: The typed options the factory accepts (a subclass of prefcli.options.Options).
    options: type[Options] = Options
    #: Bump whenever preprocessing or the score formula changes: it is part of the cache key,
    #: so entries computed by older code are never served.
    version: int = 1
    #: The scorer can `embed_images`; registering it also gives `<name>-probe`.
    embedding: bool = False
    #: For derived scorers (probes): the registered scorer they build on, by name and as its spec
    #: (`load` builds that scorer and passes it in as `embedder=`).
    base: str = ""
    base_spec: ScorerSpec | None = None
    #: The accepted forms of --weights, one line each, for `prefcli scorers NAME`.
    weights_forms: tuple[str, ...] = ()
    # "pointwise" (one number per candidate), "pairwise" (compares two; see prefcli.pairwise) or
    # "composite" (scores whole rankings from other scorers' scores: its class has `run_tasks`, which
    # the runner calls instead of its own loop; see plugins/prefcli_blend).
    kind: str = "pointwise"
    #: What `dtype=auto` loads on a CUDA device (float32 on every other device); see prefcli.devices.torch_dtype.
    cuda_dtype: str = "float16"

    def __post_init__(self) -> None:
        unknown = set(self.needs) - set(INPUTS)
        if unknown:
            raise ValueError(f"scorer {self.name!r}: unknown inputs {sorted(unknown)}; use {INPUTS}")
        if self.kind not in ("pointwise", "pairwise", "composite"):
            raise ValueError(
                f"scorer {self.name!r}: kind must be 'pointwise', 'pairwise' or 'composite', got {self.kind!r}"
            )
        if ":" not in self.factory:
            raise ValueError(f"scorer {self.name!r}: factory must look like 'module:Class', got {self.factory!r}")
        if not (isinstance(self.options, type) and issubclass(self.options, Options)):
            raise ValueError(f"scorer {self.name!r}: options must be a subclass of prefcli.options.Options")
        if int(self.version) < 1:
            raise ValueError(f"scorer {self.name!r}: version must be a positive integer")
        from prefcli.devices import DTYPES

        if self.cuda_dtype not in DTYPES:
            raise ValueError(
                f"scorer {self.name!r}: cuda_dtype must be one of {sorted(DTYPES)}, got {self.cuda_dtype!r}"
            )

    @property
    def uses_history(self) -> bool:
        return "history" in self.needs

    @property
    def pairwise(self) -> bool:
        return self.kind == "pairwise"

    def missing_requirements(self) -> list[str]:
        """Modules this scorer needs that are not installed (checked without importing)."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def load_class(self) -> type[Scorer]:
        module, _, attr = self.factory.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except ImportError as e:
            hint = f" ({self.install_hint})" if self.install_hint else ""
            raise ImportError(f"scorer {self.name!r} cannot be loaded: {e}{hint}") from e
        return obj

    def parse_options(self, options: Mapping[str, Any] | Options | None = None, **more: Any) -> Options:
        """Validated options (CLI strings or Python values); an OptionError names the option and what is allowed."""
        if isinstance(options, Options) and not more:
            if not isinstance(options, self.options):
                raise OptionError(
                    f"scorer {self.name}: options of type {type(options).__name__}, expected {self.options.__name__}"
                )
            return options
        raw = options.as_kwargs() if isinstance(options, Options) else dict(options or {})
        raw.update(more)
        return self.options.parse(raw, scorer=self.name)

    def load(
        self,
        weights: str | None = None,
        *,
        device: str | None = "auto",
        dtype: str | None = None,
        options: Mapping[str, Any] | Options | None = None,
        embedder: Scorer | None = None,
        **more: Any,
    ) -> Scorer:
        """Build the scorer: options validated, device resolved (auto → cuda, mps, cpu), the spec passed in.

        `build` does the rest; a derived scorer (a probe) gets `embedder`, the scorer it builds on.
        """
        from prefcli.devices import normalize_dtype, resolve_device

        opts = self.parse_options(options, **more)
        return self.build(weights, resolve_device(device), normalize_dtype(dtype), opts, embedder=embedder)

    def build(
        self, weights: str | None, device: str, dtype: str | None, options: Options, *, embedder: Scorer | None = None
    ) -> Scorer:
        """Build the scorer from values already resolved: a concrete device, a canonical dtype (or None),
        validated options (`load` and `prefcli.harness.handle.ScorerHandle` resolve them, once).

        `weights` None is the spec's `default_weights`. A derived scorer (a probe) gets `embedder=`: the one
        given, else its base spec built here with the same weights, device, dtype and the base's share of
        the options.
        """
        if not isinstance(options, self.options):
            raise TypeError(
                f"scorer {self.name}: options of type {type(options).__name__}, expected {self.options.__name__}"
            )
        weights = weights or self.default_weights or None
        extra: dict[str, Any] = {}
        if self.base_spec is not None:
            extra["embedder"] = (
                embedder
                if embedder is not None
                else self.base_spec.build(weights, device, dtype, self.base_options(options))
            )
        scorer = self.load_class()(weights, device, dtype, spec=self, options=options, **extra)
        from prefcli import messages

        messages.watch()  # the libraries it imported log through their own handlers: once per run in the CLI
        return scorer

    def base_options(self, options: Options) -> Options:
        """A derived scorer's options, less its own: what its base scorer is built with (already validated)."""
        if self.base_spec is None:
            raise ValueError(f"scorer {self.name!r} is not derived from another scorer")
        return self.base_spec.options(**{n: getattr(options, n) for n in self.base_spec.options.names()})


class Scorer:
    """Base class. Subclasses implement `score`; personalized ones also `condition`;
    differentiable ones also `reward`.

    Built as `Scorer(weights, device, dtype, *, spec, options)` (see the module
    docstring): `weights` a weights spec ("tiny", a local path,
    "hf-hub:org/name", an https URL), `device` a concrete torch device,
    `dtype` None for the scorer's choice, `spec` the ScorerSpec it was built
    from, `options` its validated Options (`self.options.NAME`).
    """

    spec: ScorerSpec | None = None
    options: Options
    #: Minimum number of history pairs a personalized scorer needs.
    min_history: ClassVar[int] = 0

    def __init__(
        self,
        weights: str | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        *,
        spec: ScorerSpec | None = None,
        options: Options | Mapping[str, Any] | None = None,
    ):
        if spec is not None:
            self.spec = spec
        spec = self.spec
        if isinstance(options, Options):  # what ScorerSpec.load passes: validated once, there
            if spec is not None and not isinstance(options, spec.options):
                raise TypeError(
                    f"{type(self).__name__}: options of type {type(options).__name__}, expected {spec.options.__name__}"
                )
            self.options = options
        else:  # built by hand (tests, notebooks): validated here, the one time
            self.options = spec.parse_options(options) if spec is not None else Options.parse(options)
        self.weights = weights or (spec.default_weights if spec is not None else "") or None
        self.device = device
        self.dtype = dtype

    @property
    def batch_size(self) -> int:
        return int(self.options.batch_size)

    def modules(self) -> Sequence[torch.nn.Module]:
        """The torch modules this scorer runs, main model first (default: none).

        `used` reads the dtype and device of the first parameter found; `generate` freezes every
        parameter of them so gradients reach only the latent. Override it when the scorer holds a model.
        """
        return ()

    @property
    def batches_histories(self) -> bool:
        """True when the class overrides `score_histories`: the runner then sends it many short histories per call."""
        return type(self).score_histories is not Scorer.score_histories

    @property
    def weights_id(self) -> str:
        """What identifies these weights: a content fingerprint of local files, the commit of hub ids."""
        from prefcli.weights import identity

        return identity(self.weights) if self.weights else ""

    @property
    def used(self) -> dict[str, str | None]:
        """The dtype and device this scorer actually runs with (read from its weights)."""
        from prefcli.devices import used_dtype_device

        dt, dev = used_dtype_device(self)
        return {"dtype": dt or self.dtype, "device": dev or str(self.device)}

    @property
    def identity(self) -> dict[str, Any]:
        """Everything that produced a score: name, code version, weights, score-changing options, dtype, device kind.

        The score cache is keyed on it and provenance records it.
        """
        from prefcli.devices import device_kind
        from prefcli.weights import identity as weights_identity

        spec = self.spec
        opts = self.options.score_affecting() if self.options is not None else {}
        weights_opts = set(self.options.weights_options()) if self.options is not None else set()
        for k in weights_opts & set(opts):
            if opts[k]:
                opts[k] = weights_identity(str(opts[k]))
        used = self.used
        return {
            "scorer": spec.name if spec is not None else type(self).__name__,
            "version": spec.version if spec is not None else 1,
            "weights": self.weights_id,
            "options": opts,
            "dtype": used["dtype"],
            "device": device_kind(used["device"]),
        }

    @property
    def cache_key(self) -> str:
        """`identity` as one canonical string (what the score cache is keyed on)."""
        import json

        return json.dumps(self.identity, sort_keys=True, default=str, separators=(",", ":"))

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

    def score_histories(self, jobs: Sequence[tuple[UserHistory | None, Sequence[Candidate]]]) -> list[list[float]]:
        """`score(candidates, condition(history))` for each `(history, candidates)` job, in order.

        Scorers that can batch across histories override it (the VLM family); the numbers must be the same.
        """
        return [self.score(list(cands), self.condition(history)) for history, cands in jobs]

    def candidate_extras(self, candidates: Sequence[Candidate]) -> list[dict[str, Any] | None]:
        """What this scorer said about each candidate besides its score, for `rank`'s rows (None: nothing).

        Asked after `score` has seen the candidates; e.g. hpsv3's σ beside its μ.
        """
        return [None] * len(candidates)

    def reward(
        self, pixels: torch.Tensor, prompts: Sequence[str] | str | None = None, state: Any = None
    ) -> torch.Tensor:
        """The score with gradients, for reward-guided generation (scorers whose spec says `differentiable`).

        `pixels`: a (B, 3, H, W) float tensor in [0, 1]; `prompts`: one per
        image, or one for all (ignored by scorers that read no prompt);
        `state`: what `condition(history)` returned (None for history-free
        scorers). Returns a (B,) tensor whose gradients reach `pixels`. The
        preprocessing is done with torch ops and follows `score`'s, so an
        image given both ways gets the same number up to resampling rounding.
        """
        name = self.spec.name if self.spec is not None else type(self).__name__
        raise NotImplementedError(f"scorer {name} is not differentiable: it has no reward(pixels, prompts, state)")


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

    def embed_images(self, candidates: Sequence[Candidate]) -> Any:
        """Return an (N, D) float numpy array of L2-normalized image embeddings."""
        raise NotImplementedError


def require_prompt(candidate: Candidate, scorer: str) -> str:
    """The candidate's prompt, or a clear error for scorers that judge image-text fit."""
    if candidate.prompt is None:
        where = candidate.path or candidate.image_id
        raise DataError(
            f"{where}: the {scorer} scorer needs the prompt the image was made from, and this candidate has none"
        )
    return candidate.prompt


def broadcast_prompts(prompts: Sequence[str] | str | None, n: int) -> list[str]:
    """One prompt per image for a differentiable `reward`: a single prompt serves all `n`."""
    if prompts is None:
        raise ValueError(
            "this scorer judges image-text fit: reward(pixels, prompts) needs a prompt per image (or one for all)"
        )
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if len(prompts) == 1 and n > 1:
        prompts = prompts * n
    if len(prompts) != n:
        raise ValueError(f"got {n} images but {len(prompts)} prompts")
    return prompts
