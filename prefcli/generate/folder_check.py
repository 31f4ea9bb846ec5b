"""A local diffusers pipeline folder checked before diffusers builds anything from it.

diffusers allocates each component from its ``config.json`` as written: a
negative channel count is a RuntimeError deep in torch, ``2**40`` an
allocator failure, a ``model_index.json`` that is a list an AttributeError.
Here every file diffusers will read first is checked with the standard
library only: ``model_index.json`` is an object of ``[library, class]``
pairs, and every component's ``config.json`` is an object whose sizes
(keys that name a dimension, a count of layers, heads, groups or blocks)
are whole numbers within sane bounds and whose numbers are finite.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from prefcli.errors import WeightsError

__all__ = ["SIZE_MAX", "check_pipeline_folder"]

#: The largest size any released one-step generator uses is FLUX's 3072 hidden units, T5's 10240 d_ff,
#: CLIP's 49408 vocabulary: these bounds leave room for any real model and none for an allocator bomb.
SIZE_MAX = 2**16
LARGE_SIZE_MAX = {"vocab_size": 2**20, "max_position_embeddings": 2**20, "num_train_timesteps": 10**6,
                  "intermediate_size": 2**18, "d_ff": 2**18, "sample_size": 2**14, "image_size": 2**14}  # fmt: skip
COUNT_MAX = 1024  # layers, heads, blocks, groups
_SIZE_KEY = re.compile(r"(^|_)(dim|dims|channels|size|sizes|kernel|d_model|d_kv|d_ff|embeddings|length|len)$")
_COUNT_KEY = re.compile(r"(^|_)(layers|heads|groups|blocks|per_block|experts)$")
_NUMBER_KEY = re.compile(r"^(num|n)_")  # num_class_embeds, n_positions, ...: some count, sized like a dimension


def _read_object(path: Path, what: str) -> dict[str, Any]:
    from prefcli.jsonio import read_json

    data = read_json(path, error=WeightsError)  # bounded in size and depth; one line naming the file
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: not a {what} (expected a JSON object, got {type(data).__name__})")
    return data


def _bound(key: str) -> tuple[int, int] | None:
    """(low, high) for a size-like key; None for a key that is no size."""
    if key in LARGE_SIZE_MAX:
        return 0, LARGE_SIZE_MAX[key]
    if _COUNT_KEY.search(key):
        return 0, COUNT_MAX
    if _SIZE_KEY.search(key) or _NUMBER_KEY.search(key) or key.endswith("_num_buckets"):
        return 0, SIZE_MAX
    return None


def _check_values(path: Path, key: str, value: Any, bound: tuple[int, int] | None) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise WeightsError(f"{path}: {key} is {value}, not a finite number")
        if bound is not None and not bound[0] <= value <= bound[1]:
            raise WeightsError(f"{path}: {key} is {value:g}, outside the sane range {bound[0]} to {bound[1]:,}")
        return
    if isinstance(value, int):
        if bound is not None and not bound[0] <= value <= bound[1]:
            raise WeightsError(f"{path}: {key} is {value:,}, outside the sane range {bound[0]} to {bound[1]:,}")
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_values(path, f"{key}[{i}]", v, bound)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _check_values(path, f"{key}.{k}", v, _bound(str(k)))


def check_component_config(path: Path) -> dict[str, Any]:
    """A component's config.json, every size within bounds and every number finite; WeightsError naming the key."""
    cfg = _read_object(path, "model config")
    for k, v in cfg.items():
        _check_values(path, str(k), v, _bound(str(k)))
    return cfg


def check_pipeline_folder(folder: str | Path) -> None:
    """model_index.json and each listed component's config files, checked before diffusers reads them."""
    folder = Path(folder)
    index_file = folder / "model_index.json"
    index = _read_object(index_file, "diffusers model index")
    for name, entry in index.items():
        if name.startswith("_"):
            continue
        if entry is None or isinstance(
            entry, (bool, str, int, float)
        ):  # a pipeline argument, e.g. requires_safety_checker
            _check_values(index_file, name, entry, None)
            continue
        if not (isinstance(entry, list) and len(entry) == 2 and all(e is None or isinstance(e, str) for e in entry)):
            raise WeightsError(
                f"{index_file}: component {name!r} is {json.dumps(entry)[:60]}, not a [library, class] pair"
            )
        if entry[0] is None or not (folder / name).is_dir():
            continue
        for cfg_name in ("config.json", "scheduler_config.json"):
            if (folder / name / cfg_name).is_file():
                check_component_config(folder / name / cfg_name)
