"""Tiny preference models trained on the synthetic taste world, shipped with prefcli.

Each sub-folder is a model folder (``prefcli.vlm.checkpoint`` layout: spec,
tokenizer, safetensors weights) plus ``results.json`` (the config that
trained it, the dataset it saw and its measured accuracies). Load one with
``prefcli.train.checkpoint.load_checkpoint(NAME)``; ``docs/toy-results.md``
tells how they were made and what they reach.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).parent


def names() -> list[str]:
    """Names of the shipped models."""
    return sorted(p.name for p in ROOT.iterdir() if (p / "vlm_spec.json").is_file())


def path(name: str) -> Path:
    from prefcli.errors import WeightsError

    p = ROOT / name
    if not (p / "vlm_spec.json").is_file():
        raise WeightsError(f"{name}: no shipped tiny model of that name (have: {', '.join(names()) or 'none'})")
    return p


def results(name: str) -> dict:
    """The config and measured accuracies recorded beside a shipped model."""
    f = path(name) / "results.json"
    return json.loads(f.read_text()) if f.is_file() else {}
