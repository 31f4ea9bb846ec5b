"""The preference-token model as a scorer: Q(S, z) = softmax(M+, M-)[+] after the user's history.

Weights (``--weights``):

- a model folder written by ``prefcli train`` (a run directory: its final
  ``model/`` or else its newest checkpoint; a ``checkpoints/step-*`` folder;
  or a ``model/`` folder) or by ``prefcli convert learn-user-pref``: the
  spec (base model id, template), the adapter or full weights, and the
  preference tokens, all safetensors;
- the name of a tiny model shipped in ``prefcli/train/pretrained/``;
- ``hf-hub:org/name`` — a hub repository holding such a folder;
- ``tiny`` / ``tiny:SEED`` — a random tiny model with 10 preference tokens
  and the paper's template (tests, offline smoke runs).

The history is encoded once per user (preference tokens + every history
turn, key/value cache kept); each candidate costs only its own turn.
"""

from __future__ import annotations

from typing import Any

from prefcli.errors import WeightsError
from prefcli.vlm.folders import reads_history, resolve_model, shipped_names, trained_n_ref
from prefcli.vlm.scorer import DEFAULT_N_REF, CachedVLMScorer
from prefcli.weights import is_tiny, tiny_seed

TINY_PREF_TOKENS = 10


class PrefTokenScorer(CachedVLMScorer):
    """Options: ``batch_size`` (candidates per forward pass, default 16), ``n_ref`` (the history
    length the model was trained with, for the short-history note; read from the checkpoint, else 8),
    ``offline``, ``device``, ``dtype``."""

    default_name = "preftoken"
    warn_short_history = True

    def __init__(
        self,
        weights: str | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        *,
        spec: Any = None,
        options: Any = None,
    ):
        self._weights_id = ""
        self._found_n_ref: int | None = None
        super().__init__(weights, device, dtype, spec=spec, options=options)
        self.n_ref = int(self.options.n_ref or self._found_n_ref or DEFAULT_N_REF)

    def _build(self) -> Any:
        spec = (self.weights or "").strip()
        if not spec:
            shipped = shipped_names()
            raise WeightsError(
                "scorer preftoken needs --weights: a model folder from `prefcli train`, a converted release "
                "(`prefcli convert learn-user-pref`), "
                + (f"a shipped tiny model ({', '.join(shipped)}), " if shipped else "")
                + "or tiny"
            )
        overrides: dict[str, Any] = {}
        if self.dtype:
            overrides["dtype"] = self.dtype
        if is_tiny(spec):
            from prefcli.vlm.model import tiny_vlm

            seed = tiny_seed(spec)
            self._weights_id = f"tiny:{seed}/preftoken-L{TINY_PREF_TOKENS}"
            return tiny_vlm(
                template="preftoken", n_pref_tokens=TINY_PREF_TOKENS, seed=seed, device=self.device, **overrides
            )
        from prefcli.vlm.checkpoint import load_vlm, read_spec

        model_dir, label = resolve_model(spec, self.options.offline)
        _, metadata = read_spec(model_dir)
        self._found_n_ref = trained_n_ref(model_dir, metadata)
        self.reads_history = reads_history(model_dir, metadata)
        from prefcli.weights import content_fingerprint

        self._weights_id = f"{label}#sha256:{content_fingerprint(model_dir)}"
        self.model_dir = model_dir
        return load_vlm(model_dir, device=self.device, offline=self.options.offline, **overrides)

    @property
    def weights_id(self) -> str:
        """The folder (or shipped name, hub id) plus a hash of its files: a retrained model gets a new id."""
        return self._weights_id or str(self.weights)
