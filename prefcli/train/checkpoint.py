"""Training checkpoints: safetensors only, written atomically, the last K kept, exact resume.

A run directory (``--out``) holds::

    train_config.json        the resolved TrainConfig of the run (+ "_source", "_dataset")
    metrics.jsonl            one JSON object per log / validation event
    checkpoints/
      step-00000500/         one checkpoint per save
        model/               the PrefVLM (prefcli.vlm.checkpoint.save_vlm layout):
          vlm_spec.json        spec + metadata
          tokenizer/
          model.safetensors    all weights (bases built from a config: tiny / random)
          adapter/             peft LoRA adapter (pretrained or quantized bases)
          vision.safetensors   the vision encoder, when it trains beside the adapter
          pref_tokens.safetensors
        optimizer.safetensors  AdamW moments and steps; param groups in its metadata
        aux.safetensors        a stage's helper module, if any (the attributes probe)
        rng-0.safetensors      per process: torch CPU / CUDA RNG states (+ Python, NumPy in metadata)
        trainer_state.json     step, stage, scheduler state, the data position, metrics so far
    model/                   the final model (same layout as checkpoints/*/model)

A checkpoint is written into a hidden temporary folder beside its final
place and renamed into it only when every file is complete; a crash leaves no
``step-*`` folder behind, only a ``.step-*.tmp`` one that the next save
removes. ``trainer_state.json`` is written last, inside the temporary folder.

The data position needs no sampler state: batches are a pure function of
(seed, process, step, micro-step), see ``prefcli.train.data``.

``load_checkpoint(path)`` returns a ready ``PrefVLM`` from a run directory,
a checkpoint folder or a model folder — what a ``preftoken`` scorer needs.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from prefcli.errors import WeightsError

CHECKPOINTS_DIR = "checkpoints"
MODEL_DIR = "model"
STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
AUX_FILE = "aux.safetensors"
CONFIG_FILE = "train_config.json"
_STEP_RE = re.compile(r"^step-(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"step-{int(step):08d}"


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Complete checkpoints under `root` (a run's checkpoints/ folder), oldest first."""
    from prefcli.atomic import recover_dir

    root = Path(root)
    if not root.is_dir():
        return []
    for p in list(root.glob(".step-*.old")):  # a re-save of one step killed mid-swap
        recover_dir(root / p.name[1:-4])
    found = []
    for p in root.iterdir():
        m = _STEP_RE.match(p.name)
        if m and p.is_dir() and (p / STATE_FILE).is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def prune_checkpoints(root: str | os.PathLike, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` complete checkpoints, and stale temporaries."""
    root = Path(root)
    removed = []
    for p in list_checkpoints(root)[: max(0, len(list_checkpoints(root)) - int(keep_last))]:
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    for p in root.glob(".step-*.tmp") if root.is_dir() else []:
        shutil.rmtree(p, ignore_errors=True)
    return removed


# ---------------------------------------------------------------------------
# optimizer and RNG states as safetensors


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Tensors and JSON-encoded `meta` as one safetensors file, written atomically."""
    from safetensors.torch import save_file

    from prefcli.atomic import atomic_path

    clean = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata={k: json.dumps(v, allow_nan=False) for k, v in meta.items()})


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """What `save_tensors` wrote; a missing or unreadable file is a WeightsError naming it."""
    from safetensors import safe_open

    if not path.is_file():
        raise WeightsError(f"{path}: missing from the checkpoint")
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
    except Exception as e:  # noqa: BLE001 - a corrupt file is a user-facing error
        raise WeightsError(f"{path}: not a readable safetensors checkpoint file ({e})") from e
    return tensors, meta


def save_optimizer(optimizer: Any, path: Path) -> None:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    extra: dict[str, dict] = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"state.{idx}.{k}"] = v
            else:
                extra.setdefault(str(idx), {})[k] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    save_tensors(path, tensors, {"param_groups": groups, "extra_state": extra})


def load_optimizer(optimizer: Any, path: Path) -> None:
    tensors, meta = load_tensors(path)
    state: dict[int, dict] = {}
    try:
        for key, v in tensors.items():
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
        for idx, d in meta.get("extra_state", {}).items():
            state.setdefault(int(idx), {}).update(d)
        groups = meta["param_groups"]
        for g in groups:
            if "betas" in g and isinstance(g["betas"], list):
                g["betas"] = tuple(g["betas"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise WeightsError(f"{path}: not an optimizer state prefcli wrote ({type(e).__name__}: {e})") from None
    _check_moment_shapes(optimizer, state, path)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, TypeError) as e:
        raise WeightsError(f"{path}: optimizer state does not fit this run's parameters ({e})") from e


def _check_moment_shapes(optimizer: Any, state: dict[int, dict], path: Path) -> None:
    """torch's load_state_dict takes moments of any shape and the first step fails on them: refuse them here."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for idx, d in state.items():
        if not 0 <= idx < len(params):
            raise WeightsError(f"{path}: optimizer state for parameter {idx}, but this run has {len(params)}")
        for name, v in d.items():
            if isinstance(v, torch.Tensor) and v.ndim > 0 and v.shape != params[idx].shape:
                raise WeightsError(
                    f"{path}: optimizer state {name} of parameter {idx} has shape {tuple(v.shape)}, "
                    f"the parameter {tuple(params[idx].shape)}"
                )


def restore_scheduler(scheduler: Any, state: dict[str, Any], ckpt: Path) -> None:
    """The checkpoint's scheduler state into `scheduler`, checked against the state this run's own scheduler has."""
    import math

    path = Path(ckpt) / STATE_FILE
    saved = state.get("scheduler")
    mine = scheduler.state_dict()
    if not isinstance(saved, dict):
        raise WeightsError(f"{path}: no scheduler state (expected a JSON object under 'scheduler')")
    epoch = saved.get("last_epoch")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise WeightsError(f"{path}: scheduler last_epoch {epoch!r} is not a step count")
    for key in ("base_lrs", "_last_lr"):
        v = saved.get(key)
        if not (
            isinstance(v, list)
            and len(v) == len(mine.get(key, v))
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)
        ):
            raise WeightsError(f"{path}: scheduler {key} {v!r} is not one finite learning rate per parameter group")
    unknown = sorted(set(saved) - set(mine))
    if unknown:
        raise WeightsError(
            f"{path}: scheduler state has keys this run's scheduler does not ({', '.join(map(str, unknown[:5]))})"
        )
    scheduler.load_state_dict(saved)


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    import numpy as np

    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{i}"] = s
    py = random.getstate()
    npst = np.random.get_state()
    meta = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [npst[0], npst[1].tolist(), int(npst[2]), int(npst[3]), float(npst[4])],
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    import numpy as np

    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda_")), key=lambda k: int(k[5:]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    if "python" in meta:
        v, st, g = meta["python"]
        random.setstate((v, tuple(st), g))
    if "numpy" in meta:
        name, keys, pos, has_gauss, cached = meta["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


# ---------------------------------------------------------------------------
# model weights into an existing PrefVLM


def load_weights_into(vlm: Any, model_dir: Path) -> None:
    """Copy a saved model folder's weights into an already built `vlm` (same spec)."""
    from prefcli.vlm import checkpoint as vck
    from prefcli.vlm.pref_tokens import load_pref_tokens
    from prefcli.weights import load_safetensors  # checked first: a garbage file is one line

    model_dir = Path(model_dir)
    full = model_dir / vck.MODEL_FILE
    adapter = model_dir / vck.ADAPTER_DIR / "adapter_model.safetensors"
    try:
        if full.is_file():
            missing, unexpected = vlm.core.load_state_dict(load_safetensors(full), strict=False)
            if missing or unexpected:
                raise WeightsError(
                    f"{full}: does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})"
                )
        elif adapter.is_file():
            from peft.utils import set_peft_model_state_dict

            set_peft_model_state_dict(vlm.hf_model, load_safetensors(adapter))
            vision = model_dir / vck.VISION_FILE
            if vision.is_file():
                vlm.inner.vision_model.load_state_dict(load_safetensors(vision))
        else:
            raise WeightsError(f"{model_dir}: no {vck.MODEL_FILE} or {vck.ADAPTER_DIR}/ in this checkpoint")
    except RuntimeError as e:
        raise WeightsError(f"{model_dir}: weights do not fit the model ({e})") from e
    tok_file = model_dir / "pref_tokens.safetensors"
    if tok_file.is_file():
        if vlm.pref_tokens is None:
            raise WeightsError(f"{tok_file}: the checkpoint has preference tokens but the model has none")
        loaded = load_pref_tokens(tok_file).weight
        if loaded.shape != vlm.pref_tokens.weight.shape:
            raise WeightsError(
                f"{tok_file}: preference tokens of shape {tuple(loaded.shape)}, the model's are "
                f"{tuple(vlm.pref_tokens.weight.shape)}"
            )
        with torch.no_grad():
            vlm.pref_tokens.weight.copy_(loaded.to(vlm.pref_tokens.weight.dtype))


# ---------------------------------------------------------------------------
# whole checkpoints


def save_checkpoint(
    root: str | os.PathLike,
    step: int,
    vlm: Any,
    optimizer: Any,
    state: dict[str, Any],
    *,
    process_index: int = 0,
    keep_last: int = 3,
    metadata: dict[str, Any] | None = None,
    aux: Any = None,
    _fail_after: str | None = None,
) -> Path:
    """Write checkpoint `step` under `root` atomically and keep the newest `keep_last`.

    `_fail_after` (tests only) raises after the named part is written, to simulate a crash.
    """
    from prefcli.atomic import replace_dir, write_text, writing
    from prefcli.vlm.checkpoint import save_vlm

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    with writing(final):  # a full disk names the checkpoint it could not write
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
    try:
        with writing(final, work=tmp):
            save_vlm(vlm, tmp / MODEL_DIR, metadata=metadata)
            if _fail_after == "model":
                raise RuntimeError("simulated crash after the model was written")
            save_optimizer(optimizer, tmp / OPTIMIZER_FILE)
            if _fail_after == "optimizer":
                raise RuntimeError("simulated crash after the optimizer was written")
            if aux is not None:  # a stage's helper module (the attributes probe)
                save_tensors(tmp / AUX_FILE, dict(aux.state_dict()), {})
            t, m = rng_state()
            save_tensors(tmp / f"rng-{process_index}.safetensors", t, m)
            write_text(tmp / STATE_FILE, json.dumps(state, indent=2, default=str, allow_nan=False))
            # A swap that a kill cannot leave without this step (the old copy is put back on the next run).
            replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    prune_checkpoints(root, keep_last)
    return final


def save_rng_only(ckpt: Path, process_index: int) -> None:
    """Other processes add their own RNG state to a checkpoint the main process wrote."""
    t, m = rng_state()
    save_tensors(Path(ckpt) / f"rng-{process_index}.safetensors", t, m)


def read_state(ckpt: str | os.PathLike) -> dict[str, Any]:
    """trainer_state.json of a checkpoint, its step checked against the folder's name."""
    path = Path(ckpt) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{path}: unreadable trainer state ({e})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: not a trainer state (expected a JSON object, got {type(state).__name__})")
    step = state.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise WeightsError(f"{path}: bad step {step!r} (expected a non-negative integer)")
    m = _STEP_RE.match(Path(ckpt).name)
    if m and int(m.group(1)) != step:
        raise WeightsError(f"{path}: says step {step}, but the checkpoint folder is {Path(ckpt).name}")
    stage = state.get("stage", 0)
    if not isinstance(stage, int) or isinstance(stage, bool) or stage < 0:
        raise WeightsError(f"{path}: bad stage {stage!r} (expected a non-negative integer)")
    if not isinstance(state.get("scheduler", {}), dict):
        raise WeightsError(f"{path}: bad scheduler state (expected a JSON object)")
    return state


def restore_checkpoint(
    ckpt: str | os.PathLike, vlm: Any, optimizer: Any, process_index: int = 0, aux: Any = None
) -> dict[str, Any]:
    """Weights, optimizer and RNG states of `ckpt` into a run set up for the same stage."""
    ckpt = Path(ckpt)
    state = read_state(ckpt)
    load_weights_into(vlm, ckpt / MODEL_DIR)
    if aux is not None:
        t, _ = load_tensors(ckpt / AUX_FILE)
        aux.load_state_dict(t)
    load_optimizer(optimizer, ckpt / OPTIMIZER_FILE)
    rng_file = ckpt / f"rng-{process_index}.safetensors"
    if not rng_file.is_file():
        rng_file = ckpt / "rng-0.safetensors"
    t, m = load_tensors(rng_file)
    set_rng_state(t, m)
    return state


def load_checkpoint(path: str | os.PathLike, device: str = "cpu", **overrides: Any) -> Any:
    """A ready PrefVLM (eval mode) from a run directory, a checkpoint folder or a model folder.

    A run directory gives its final ``model/``, else its newest checkpoint.
    The name of a shipped pretrained tiny model (``prefcli.train.pretrained``) works too.
    """
    from prefcli.vlm.checkpoint import load_vlm
    from prefcli.vlm.folders import model_dir_of

    p = Path(path)
    if not p.exists():
        from prefcli.train import pretrained

        if str(path) in pretrained.names():
            p = pretrained.path(str(path))
        else:
            raise WeightsError(f"{path}: no such model folder (shipped tiny models: {', '.join(pretrained.names())})")
    return load_vlm(model_dir_of(p), device=device, **overrides)
