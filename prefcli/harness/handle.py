"""ScorerHandle: one scorer request, resolved once, loaded only when something is not in the cache.

Everything a command needs to know before reading any data is resolved here,
once: the spec (the name looked up in the registry), the options (validated
against the spec's typed Options class), the device ("auto" made concrete)
and the dtype. The runner (`prefcli.harness.runner.run_scorer`), `rank`,
`eval`, `bench`, `bench images`, `generate` and `bench generate` take the
handle and never resolve any of it again; a command with several scorers
resolves its device once for all of them (`device_resolved=True`). The
model itself is built from these values by `ScorerSpec.build`.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from prefcli.harness.cache import CacheDir
    from prefcli.options import Options
    from prefcli.scorer import Scorer, ScorerSpec

log = logging.getLogger(__name__)


class ScorerHandle:
    """A scorer that is loaded only when something is not in the cache.

    `ScorerHandle(name_or_spec, weights, device=, dtype=, options=, cache=)`:
    its options are validated and its device resolved when the handle is
    made, so a bad option or device fails before any data is read. With
    `device_resolved=True` the device is one the caller already resolved
    (`prefcli.devices.resolve_device`), once for every scorer of a command
    (bench, bench images, generate), and is not resolved again. Its
    identity (what the score cache is keyed on: name, code version, weights
    fingerprint or commit, score-changing options, dtype, device kind) comes
    from the loaded scorer, or from the cache's index when this exact request
    was resolved before, so a fully cached rerun never builds the model.
    """

    def __init__(
        self,
        name: str | ScorerSpec,
        weights: str | None = None,
        *,
        device: str | None = "auto",
        dtype: str | None = None,
        cache: CacheDir | None = None,
        options: Mapping[str, Any] | Options | None = None,
        scorer: Scorer | None = None,
        device_resolved: bool = False,
    ):
        from prefcli.scorer import ScorerSpec

        if scorer is not None:  # already loaded: what it was built with is what it is
            from prefcli import plugins

            self.spec = scorer.spec if scorer.spec is not None else plugins.get_scorer_spec(str(name))
            self.options = scorer.options
            self.device, self.dtype = str(scorer.device), scorer.dtype
            self.explicit: frozenset[str] = frozenset(self.options.changed())
        else:
            from prefcli import plugins
            from prefcli.devices import normalize_dtype, resolve_device
            from prefcli.options import Options

            self.spec = name if isinstance(name, ScorerSpec) else plugins.get_scorer_spec(name)
            self.options = self.spec.parse_options(options)
            # A command that runs several scorers (or a scorer beside a generator) resolves its device once,
            # for all of them, and says so: the handle takes that device as it is.
            self.device = str(device) if device_resolved else resolve_device(device)
            self.dtype = normalize_dtype(dtype)
            given = options.changed() if isinstance(options, Options) else (options or {})
            #: The options the caller set (defaults a caller may choose for them, such as blend's general part, stay theirs).
            self.explicit = frozenset(str(k).strip().replace("-", "_") for k in given)
        self.name = self.spec.name
        self.weights = weights or self.spec.default_weights or None
        self.cache = cache
        self._scorer = scorer
        self._cache_key: str | None = scorer.cache_key if scorer is not None else None
        # Probe base embeddings kept across runs of this handle (what --no-cache still saves).
        self.embeddings: dict = {}

    @classmethod
    def wrap(cls, scorer: Scorer, cache: CacheDir | None = None) -> ScorerHandle:
        return cls(
            scorer.spec.name if scorer.spec is not None else type(scorer).__name__,
            scorer.weights,
            cache=cache,
            scorer=scorer,
        )

    def with_options(self, **changes: Any) -> ScorerHandle:
        """The same request with some options set by the program (values it chose, valid by construction):
        nothing is looked up, parsed or resolved again."""
        if self._scorer is not None:
            raise ValueError(f"scorer {self.name} is already loaded; set its options before it is")
        new = copy.copy(self)
        new.options = dataclasses.replace(self.options, **changes)
        new._cache_key, new.embeddings = None, {}
        return new

    @property
    def loaded(self) -> bool:
        return self._scorer is not None

    @property
    def scorer(self) -> Scorer:
        if self._scorer is None:
            self._scorer = self.spec.build(self.weights, self.device, self.dtype, self.options)
            log.info("loaded scorer %s (weights %s) on %s", self.name, self.weights, self.device)
            # The identity is computed only when a cache will keep it (the `cache_key` property computes it
            # on demand otherwise): a scorer of scorers builds its parts lazily, and `generate` must be able
            # to ask it which part is not differentiable before any part's weights are looked up.
            if self.cache is not None:
                key = self._scorer.cache_key
                self._cache_key = key  # the loaded model is the truth, should the index disagree
                request = self.request_key()
                if request is not None:
                    self.cache.remember_key(self.name, request, key)
        return self._scorer

    def request_key(self) -> str | None:
        """What was asked for, identified without loading the model; None when that cannot be trusted
        (a hub revision that is not cached here yet)."""
        import json

        from prefcli.devices import device_kind
        from prefcli.weights import identity

        opts = self.options.score_affecting()
        for k in set(self.options.weights_options()) & set(opts):
            if opts[k]:
                opts[k] = identity(str(opts[k]))
        req = {
            "scorer": self.name,
            "version": self.spec.version,
            "weights": identity(self.weights) if self.weights else "",
            "options": opts,
            "dtype": self.dtype or "auto",
            "device": device_kind(self.device),
        }
        text = json.dumps(req, sort_keys=True, default=str, separators=(",", ":"))
        return None if "?unresolved" in text else text

    @property
    def cache_key(self) -> str:
        """The scorer's identity as one string: what its scores are stored under."""
        if self._cache_key is None and self.cache is not None:
            request = self.request_key()
            if request is not None:
                self._cache_key = self.cache.remembered_key(self.name, request)
        if self._cache_key is None:
            self._cache_key = self.scorer.cache_key
        return self._cache_key

    @property
    def identity(self) -> dict:
        """What produced the scores (dtype and device as used, weights as fingerprinted), for provenance."""
        import json

        if self._scorer is not None:
            return self._scorer.identity
        return json.loads(self.cache_key)

    @property
    def weights_id(self) -> str:
        return str(self.identity.get("weights", ""))

    @property
    def uses_history(self) -> bool:
        return self.spec.uses_history

    @property
    def probe_base(self) -> str | None:
        return self.spec.base or None
