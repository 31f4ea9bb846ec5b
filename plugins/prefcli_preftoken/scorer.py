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

import json
from pathlib import Path
from typing import Any

from prefcli.errors import WeightsError
from prefcli.weights import is_tiny, parse, resolve_dir, tiny_seed

from prefcli_preftoken.cached import DEFAULT_N_REF, CachedVLMScorer

#: Files a hub snapshot of a model folder needs (no pickles).
MODEL_FILE_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "*.txt"]
TINY_PREF_TOKENS = 10


def _shipped_names() -> list[str]:
    try:
        from prefcli.train import pretrained
    except ImportError:  # pragma: no cover - the training package is part of prefcli
        return []
    return pretrained.names()


def model_dir_of(path: Path) -> Path:
    """The model folder inside a run directory, a checkpoint folder or a model folder."""
    from prefcli.vlm.checkpoint import SPEC_FILE

    if (path / SPEC_FILE).is_file():
        return path
    if (path / "model" / SPEC_FILE).is_file():
        return path / "model"
    steps = sorted(p for p in (path / "checkpoints").glob("step-*") if (p / "model" / SPEC_FILE).is_file())
    if steps:
        return steps[-1] / "model"
    raise WeightsError(
        f"{path}: not a preftoken model folder (no vlm_spec.json here, in model/, or in checkpoints/step-*/model/); "
        f"give a folder written by `prefcli train` or `prefcli convert learn-user-pref`"
    )


def resolve_model(spec: str, offline: bool | None = None) -> tuple[Path, str]:
    """(model folder, a name for provenance) for a preftoken weights spec other than tiny."""
    s = str(spec).strip()
    p = Path(s).expanduser()
    if p.exists():
        if not p.is_dir():
            raise WeightsError(f"{p}: is a file; preftoken weights are a model folder written by `prefcli train` "
                               f"or `prefcli convert learn-user-pref`")
        return model_dir_of(p), str(p.resolve())
    shipped = _shipped_names()
    if s in shipped:
        from prefcli.train import pretrained

        return pretrained.path(s), f"pretrained:{s}"
    src = parse(s)
    if src.kind == "hub":
        d = resolve_dir(s, allow_patterns=MODEL_FILE_PATTERNS, offline=offline)
        return model_dir_of(Path(d)), src.describe()
    raise WeightsError(
        f"{s}: not a model folder, a shipped tiny model ({', '.join(shipped) or 'none installed'}), "
        f"hf-hub:org/name, or tiny"
    )


def _n_ref_of(model_dir: Path, metadata: dict) -> int | None:
    """N_ref the model was trained with: its metadata, else the training run's train_config.json."""
    for key in ("n_ref", "N_ref"):
        if isinstance(metadata.get(key), int):
            return int(metadata[key])
    for d in (model_dir, *list(model_dir.parents)[:3]):
        f = d / "train_config.json"
        if f.is_file():
            try:
                n = json.loads(f.read_text()).get("data", {}).get("n_ref")
            except (OSError, ValueError, AttributeError):
                return None
            return int(n) if isinstance(n, int) and n > 0 else None
    return None


def _reads_history(model_dir: Path, metadata: dict) -> bool:
    """Whether the model was trained with histories; a population model (trained
    history-free) must be scored without one, exactly as it was trained."""
    if isinstance(metadata.get("history"), bool):
        return bool(metadata["history"])
    stages = None
    results = model_dir / "results.json"
    if results.is_file():
        try:
            stages = json.loads(results.read_text()).get("trained_with", {}).get("stages")
        except (OSError, ValueError, AttributeError):
            stages = None
    if stages is None and isinstance(metadata.get("train_config"), str):
        try:
            from prefcli.train.config import load_config

            stages = [vars(st) for st in load_config(metadata["train_config"]).stages]
        except Exception:  # an unknown or moved config: fall back to the default below
            stages = None
    if not stages:
        return True
    return any(bool(st.get("history", True)) for st in stages)


class PrefTokenScorer(CachedVLMScorer):
    """Options: ``batch_size`` (candidates per forward pass, default 16), ``n_ref`` (the history
    length the model was trained with, for the short-history note; read from the checkpoint, else 8),
    ``offline``, ``device``, ``dtype``."""

    default_name = "preftoken"
    warn_short_history = True

    def __init__(self, weights: str | None = None, device: str = "cpu", dtype: str | None = None, *,
                 batch_size: int = 16, n_ref: int | None = None, offline: bool | None = None, **options: Any):
        self._offline = offline
        self._weights_id = ""
        self._found_n_ref: int | None = None
        super().__init__(weights=weights, device=device, dtype=dtype, batch_size=batch_size, **options)
        self.n_ref = int(n_ref or self._found_n_ref or DEFAULT_N_REF)

    def _build(self) -> Any:
        spec = (self.weights or "").strip()
        if not spec:
            shipped = _shipped_names()
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
            return tiny_vlm(template="preftoken", n_pref_tokens=TINY_PREF_TOKENS, seed=seed, device=self.device,
                            **overrides)
        from prefcli.vlm.checkpoint import load_vlm, read_spec

        model_dir, label = resolve_model(spec, self._offline)
        _, metadata = read_spec(model_dir)
        self._found_n_ref = _n_ref_of(model_dir, metadata)
        self.reads_history = _reads_history(model_dir, metadata)
        from prefcli.weights import content_fingerprint

        self._weights_id = f"{label}#sha256:{content_fingerprint(model_dir)}"
        self.model_dir = model_dir
        return load_vlm(model_dir, device=self.device, offline=self._offline, **overrides)

    @property
    def weights_id(self) -> str:
        """The folder (or shipped name, hub id) plus a hash of its files: a retrained model gets a new id."""
        return self._weights_id or str(self.weights)
