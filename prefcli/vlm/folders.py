"""Where IDEFICS2-family models live: one model-folder lookup and the shipped tiny models.

- ``model_dir_of(path)``: the model folder inside a training run (its final
  ``model/``, else its newest ``checkpoints/step-*/model``), a checkpoint
  folder, or a model folder itself;
- ``shipped_names()`` / ``shipped_path(name)`` / ``shipped_results(name)``:
  the tiny models trained on the synthetic taste world that ship with prefcli
  (their files stay in ``prefcli/train/pretrained/``, where training writes them);
- ``resolve_model(spec)``: a preftoken weights spec (a folder, a shipped
  name, ``hf-hub:org/name``) as (model folder, label for provenance);
- ``reads_history`` and ``trained_n_ref``: what a model folder says about how
  it was trained.

Nothing here imports torch or prefcli.train at module level.
"""

from __future__ import annotations

from pathlib import Path

from prefcli.errors import DataError, WeightsError
from prefcli.jsonio import read_json

#: The shipped tiny models (files written by training, kept beside the training code).
SHIPPED_ROOT = Path(__file__).resolve().parents[1] / "train" / "pretrained"
#: Files a hub snapshot of a model folder needs (no pickles).
MODEL_FILE_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "*.txt"]
_MODEL_DIR, _CHECKPOINTS = "model", "checkpoints"


def _spec_file() -> str:
    from prefcli.vlm.checkpoint import SPEC_FILE

    return SPEC_FILE


def shipped_names() -> list[str]:
    """Names of the shipped tiny models."""
    if not SHIPPED_ROOT.is_dir():
        return []
    return sorted(p.name for p in SHIPPED_ROOT.iterdir() if (p / _spec_file()).is_file())


def shipped_path(name: str) -> Path:
    p = SHIPPED_ROOT / name
    if not (p / _spec_file()).is_file():
        raise WeightsError(f"{name}: no shipped tiny model of that name (have: {', '.join(shipped_names()) or 'none'})")
    return p


def shipped_results(name: str) -> dict:
    """The config and measured accuracies recorded beside a shipped model."""
    f = shipped_path(name) / "results.json"
    return read_json(f, error=WeightsError, expect=dict, what="results.json") if f.is_file() else {}


def _step(p: Path) -> int:
    try:
        return int(p.name.split("-", 1)[1])
    except (IndexError, ValueError):
        return -1


def model_dir_of(path: str | Path) -> Path:
    """The model folder inside a run directory, a checkpoint folder or a model folder."""
    path = Path(path)
    spec = _spec_file()
    if (path / spec).is_file():
        return path
    if (path / _MODEL_DIR / spec).is_file():
        return path / _MODEL_DIR
    # Newest complete checkpoint by step number (step-10 after step-9).
    steps = sorted((p for p in (path / _CHECKPOINTS).glob("step-*") if (p / _MODEL_DIR / spec).is_file()), key=_step)
    if steps:
        return steps[-1] / _MODEL_DIR
    raise WeightsError(
        f"{path}: not a prefcli model folder (no {spec} here, in model/, or in checkpoints/step-*/model/); "
        f"give a folder written by `prefcli train` or `prefcli convert learn-user-pref`"
    )


def resolve_model(spec: str, offline: bool | None = None) -> tuple[Path, str]:
    """(model folder, a name for provenance) for a model weights spec other than tiny."""
    from prefcli.weights import parse, resolve_dir

    s = str(spec).strip()
    p = Path(s).expanduser()
    if p.exists():
        if not p.is_dir():
            raise WeightsError(
                f"{p}: is a file; preftoken weights are a model folder written by `prefcli train` "
                f"or `prefcli convert learn-user-pref`"
            )
        return model_dir_of(p), str(p.resolve())
    shipped = shipped_names()
    if s in shipped:
        return shipped_path(s), f"pretrained:{s}"
    src = parse(s)
    if src.kind == "hub":
        d = resolve_dir(s, allow_patterns=MODEL_FILE_PATTERNS, offline=offline)
        return model_dir_of(Path(d)), src.describe()
    raise WeightsError(
        f"{s}: not a model folder, a shipped tiny model ({', '.join(shipped) or 'none installed'}), "
        f"hf-hub:org/name, or tiny"
    )


def trained_n_ref(model_dir: Path, metadata: dict) -> int | None:
    """N_ref the model was trained with: its metadata, else the training run's train_config.json."""
    for key in ("n_ref", "N_ref"):
        if isinstance(metadata.get(key), int):
            return int(metadata[key])
    for d in (model_dir, *list(model_dir.parents)[:3]):
        f = d / "train_config.json"
        if f.is_file():
            try:
                n = read_json(f).get("data", {}).get("n_ref")
            except (DataError, AttributeError):
                return None
            return int(n) if isinstance(n, int) and n > 0 else None
    return None


def reads_history(model_dir: Path, metadata: dict) -> bool:
    """Whether the model was trained with histories; a population model (trained
    history-free) must be scored without one, exactly as it was trained."""
    if isinstance(metadata.get("history"), bool):
        return bool(metadata["history"])
    stages = None
    results = model_dir / "results.json"
    if results.is_file():
        try:
            stages = read_json(results).get("trained_with", {}).get("stages")
        except (DataError, AttributeError):
            stages = None
    if stages is None and isinstance(metadata.get("train_config"), str):
        try:
            from prefcli.train.config import load_config  # a config named by the checkpoint, read only then

            stages = [vars(st) for st in load_config(metadata["train_config"]).stages]
        except Exception:  # noqa: BLE001 - an unknown or moved config: fall back to the default below
            stages = None
    if not stages:
        return True
    return any(bool(st.get("history", True)) for st in stages)
