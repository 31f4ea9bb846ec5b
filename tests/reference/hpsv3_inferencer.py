"""hpsv3 1.0.0's own `HPSv3RewardInferencer`, run under transformers 4.45.2 in a subprocess: the oracle for `hpsv3`.

The wheel pins `transformers==4.45.2` (its METADATA) and imports its training
stack at module level; neither fits this venv, so both live where nothing
imports them by accident:

    pip install --no-deps --target .venv/oracles/transformers-4.45.2 transformers==4.45.2
    pip install --no-deps --target .venv/oracles/hpsv3-1.0.0 hpsv3==1.0.0 omegaconf==2.3.0 antlr4-python3-runtime==4.9.3

(`make venv` does it; omegaconf is what `hpsv3/utils/parser.py` line 5 reads
the YAML config with). The child process puts both folders first on
sys.path and runs the wheel's code untouched, with these shims, each for a
module that refuses today's versions or is not installed, and none on the
inference path:

- `transformers.dependency_versions_check`: an empty `dep_version_check`
  (transformers 4.45.2 refuses today's tokenizers and huggingface_hub at import);
- `trl` (train.py line 21, qwen2vl_trainer.py line 56; trl is not installed):
  `get_quantization_config` returns None — what trl returns when the config
  asks for neither 4-bit nor 8-bit, as HPSv3_7B.yaml does — and `RewardTrainer`
  is an empty base class for the trainer class that inference never builds;
- `torch.utils.tensorboard`, `pandas`, `datasets`, `fire` (qwen2vl_trainer.py
  lines 10, 14, 19; data_collator_qwen.py line 5; train.py line 3): imported
  at module level, unused by inference, not installed: empty modules.

The config is the wheel's own `hpsv3/config/HPSv3_7B.yaml` with three keys
changed: `model_name_or_path` (the tiny base folder instead of the hub's
Qwen2-VL-7B-Instruct), `bf16: false` and `torch_dtype: float32` (CPU, so
that both sides compute in float32 and agree to 1e-4).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TRANSFORMERS = "4.45.2"
HPSV3 = "1.0.0"
ENV = "PREFCLI_ORACLE_HPSV3"  # a folder holding transformers-4.45.2/ and hpsv3-1.0.0/


def locations() -> tuple[Path, Path] | None:
    """(transformers 4.45.2 folder, hpsv3 1.0.0 folder), or None when either is missing."""
    roots = [os.environ.get(ENV, "")] + [str(Path(p) / "oracles") for p in (sys.prefix, sys.base_prefix)]
    for r in roots:
        if not r:
            continue
        tf, hp = Path(r) / f"transformers-{TRANSFORMERS}", Path(r) / f"hpsv3-{HPSV3}"
        if (tf / "transformers" / "__init__.py").is_file() and (hp / "hpsv3" / "inference.py").is_file():
            return tf, hp
    return None


def available() -> bool:
    return locations() is not None


_CHILD = r"""
import importlib.machinery, pickle, sys, types
tf_dir, hp_dir, job_file, out_file = sys.argv[1:5]
sys.path[:0] = [tf_dir, hp_dir]

def stub(name, **attrs):
    m = types.ModuleType(name)
    m.__spec__ = importlib.machinery.ModuleSpec(name, None)  # torch and torchvision probe modules by spec
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m

stub("transformers.dependency_versions_check", dep_version_check=lambda *a, **k: None)
import torch, yaml
import transformers  # first: it probes which optional packages exist, and the stubs below are not packages
assert transformers.__version__ == sys.argv[5], transformers.__version__
stub("trl", get_quantization_config=lambda model_config: None, get_kbit_device_map=lambda: None,
     RewardTrainer=type("RewardTrainer", (), {}))
stub("torch.utils.tensorboard", SummaryWriter=object)
for name in ("pandas", "datasets", "fire"):
    stub(name)
import hpsv3
from hpsv3 import HPSv3RewardInferencer
from hpsv3.inference import _MODEL_CONFIG_PATH

job = pickle.load(open(job_file, "rb"))
cfg = yaml.safe_load(open(_MODEL_CONFIG_PATH / "HPSv3_7B.yaml"))
cfg.update(model_name_or_path=job["base"], bf16=False, torch_dtype="float32", output_dir=job["work"])
config_path = job["work"] + "/HPSv3_tiny.yaml"
yaml.safe_dump(cfg, open(config_path, "w"))
torch.manual_seed(0)
inf = HPSv3RewardInferencer(config_path=config_path, checkpoint_path=job["checkpoint"], device="cpu")
out = {"hpsv3_file": hpsv3.__file__, "transformers_file": transformers.__file__, "batches": []}
with torch.no_grad():
    for paths, prompts in job["batches"]:
        batch = inf.prepare_batch(paths, prompts)
        rewards = inf.reward(paths, prompts)
        out["batches"].append({"rewards": rewards.float().numpy(), "input_ids": batch["input_ids"].numpy(),
                               "attention_mask": batch["attention_mask"].numpy(),
                               "pixel_values": batch["pixel_values"].float().numpy(),
                               "image_grid_thw": batch["image_grid_thw"].numpy()})
pickle.dump(out, open(out_file, "wb"))
"""


def base_with_weights(base: str | Path, checkpoint: str | Path, out: str | Path) -> Path:
    """A copy of the base folder that also holds base-model weights, which upstream loads before its checkpoint.

    train.py line 67 builds the model with `from_pretrained(model_name_or_path)` (the hub's
    Qwen2-VL-7B-Instruct weights), then inference.py line 48 overwrites every tensor with the
    checkpoint, strictly. The values of these weights therefore never reach a score: they are the
    checkpoint's own, without the reward head, the embeddings padded to the config's vocab_size.
    """
    import json
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for f in Path(base).iterdir():
        if f.is_file() and f.suffix in (".json", ".txt"):
            shutil.copy(f, out / f.name)
    rows = json.loads((out / "config.json").read_text())["vocab_size"]
    state = {k: v for k, v in load_file(str(checkpoint)).items() if not k.startswith("rm_head.")}
    for k in ("model.embed_tokens.weight", "lm_head.weight"):
        v = state[k]
        state[k] = torch.cat([v, torch.zeros(rows - v.shape[0], v.shape[1], dtype=v.dtype)])
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def rewards(base: str | Path, checkpoint: str | Path, batches: Sequence[tuple[Sequence[bytes], Sequence[str]]]) -> dict[str, Any]:
    """Run `HPSv3RewardInferencer.reward` (and its `prepare_batch`) on each batch of (PNG files, prompts).

    `base`: a folder with the base model's files and weights (see `base_with_weights`)."""
    where = locations()
    if where is None:
        raise RuntimeError("the hpsv3 oracle is not installed (see this module's docstring)")
    with tempfile.TemporaryDirectory(prefix="prefcli-hpsv3-oracle-") as d:
        jobs = []
        for bi, (files, prompts) in enumerate(batches):
            paths = []
            for i, data in enumerate(files):
                p = Path(d) / f"b{bi}_{i}.png"
                p.write_bytes(data)
                paths.append(str(p))  # upstream opens paths itself (dataset/utils.py line 104)
            jobs.append((paths, list(prompts)))
        job, result = Path(d) / "job.pkl", Path(d) / "out.pkl"
        with open(job, "wb") as f:
            pickle.dump({"base": str(base), "checkpoint": str(checkpoint), "batches": jobs, "work": d}, f)
        env = dict(os.environ, OMP_NUM_THREADS="1", TRANSFORMERS_OFFLINE="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(where[0]), str(where[1]), str(job), str(result), TRANSFORMERS],
                              capture_output=True, text=True, env=env, timeout=900)  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"hpsv3 oracle failed:\n{proc.stderr[-4000:]}")
        with open(result, "rb") as f:
            return pickle.load(f)


__all__ = ["available", "locations", "rewards"]
