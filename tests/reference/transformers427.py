"""transformers 4.27.3 itself, run in a subprocess, as the oracle for PickScore's preprocessing.

PickScore's published numbers come from its README snippet
(github.com/yuvalkirstain/PickScore, README.md lines 49-93) run under the
versions its requirements.txt pins: `transformers==4.27.3` (line 8). There,
`AutoProcessor.from_pretrained(...)` is a `CLIPProcessor` whose image
processor is PIL-backed (transformers 4.27.3, models/clip/image_processing_clip.py,
`preprocess`: `convert_to_rgb` — image_transforms.py lines 714-729, a plain
`image.convert("RGB")` — then `resize` with PIL, `center_crop` with the
offset `(orig - crop) // 2`, `rescale`, `normalize`) and whose tokenizer is
the `tokenizer.json`-backed `CLIPTokenizerFast`.

transformers 5 cannot be that version, so the oracle is the real 4.27.3
package, installed where nothing imports it by accident:

    pip install --no-deps --target .venv/oracles/transformers-4.27.3 transformers==4.27.3

(`make venv` does it) and imported only in a child process. One shim: its
`dependency_versions_check` (run at import, refusing today's tokenizers and
huggingface_hub) is replaced by an empty module; no code of the processor or
tokenizer is touched.
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

VERSION = "4.27.3"
ENV = "PREFCLI_ORACLE_TRANSFORMERS427"


def location() -> Path | None:
    """The folder holding transformers 4.27.3 (env PREFCLI_ORACLE_TRANSFORMERS427, else .venv/oracles/...)."""
    candidates = [os.environ.get(ENV, "")]
    for prefix in (sys.prefix, sys.base_prefix):
        candidates.append(str(Path(prefix) / "oracles" / f"transformers-{VERSION}"))
    for c in candidates:
        if c and (Path(c) / "transformers" / "__init__.py").is_file():
            return Path(c)
    return None


def available() -> bool:
    return location() is not None


_CHILD = r"""
import io, json, pickle, sys, types
sys.path.insert(0, sys.argv[1])
sys.modules["transformers.dependency_versions_check"] = types.ModuleType("transformers.dependency_versions_check")
import transformers
assert transformers.__version__ == sys.argv[2], transformers.__version__
from PIL import Image
from transformers import AutoProcessor
job = pickle.load(open(sys.argv[3], "rb"))
processor = AutoProcessor.from_pretrained(job["processor_dir"])
out = {"processor": type(processor).__name__, "image_processor": type(processor.image_processor).__name__,
       "tokenizer": type(processor.tokenizer).__name__, "pixels": [], "input_ids": []}
for data in job["files"]:
    # README lines 64-70, one image at a time (each is preprocessed alone either way)
    inputs = processor(images=[Image.open(io.BytesIO(data))], padding=True, truncation=True, max_length=77, return_tensors="np")
    out["pixels"].append(inputs["pixel_values"][0])
for prompt in job["prompts"]:
    # README lines 72-78
    inputs = processor(text=prompt, padding=True, truncation=True, max_length=77, return_tensors="np")
    out["input_ids"].append(inputs["input_ids"][0].tolist())
pickle.dump(out, open(sys.argv[4], "wb"))
"""


def readme_inputs(processor_dir: str | Path, files: Sequence[bytes], prompts: Sequence[str] = ()) -> dict[str, Any]:
    """What the README's `processor(...)` calls give under transformers 4.27.3: pixel values per file, token ids per prompt."""
    where = location()
    if where is None:
        raise RuntimeError(f"transformers {VERSION} is not installed as an oracle (see this module's docstring)")
    with tempfile.TemporaryDirectory(prefix="prefcli-tf427-") as d:
        job, result = Path(d) / "job.pkl", Path(d) / "out.pkl"
        with open(job, "wb") as f:
            pickle.dump({"processor_dir": str(processor_dir), "files": list(files), "prompts": list(prompts)}, f)
        env = dict(os.environ, OMP_NUM_THREADS="1", TRANSFORMERS_OFFLINE="1", HF_HUB_OFFLINE="1")
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(where), VERSION, str(job), str(result)],
            capture_output=True, text=True, env=env, timeout=600,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"transformers {VERSION} oracle failed:\n{proc.stderr[-3000:]}")
        with open(result, "rb") as f:
            return pickle.load(f)


__all__ = ["available", "location", "readme_inputs"]
