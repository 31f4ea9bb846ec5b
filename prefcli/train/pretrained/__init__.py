"""Tiny preference models trained on the synthetic taste world, shipped with prefcli.

Each sub-folder is a model folder (``prefcli.vlm.checkpoint`` layout: spec,
tokenizer, safetensors weights) plus ``results.json`` (the config that
trained it, the dataset it saw and its measured accuracies). The files live
here, beside the training code that writes them; the lookup is
``prefcli.vlm.folders`` (re-exported below). ``docs/toy-results.md`` tells
how they were made and what they reach.
"""

from __future__ import annotations

from prefcli.vlm.folders import SHIPPED_ROOT as ROOT  # noqa: F401
from prefcli.vlm.folders import shipped_names as names  # noqa: F401
from prefcli.vlm.folders import shipped_path as path  # noqa: F401
from prefcli.vlm.folders import shipped_results as results  # noqa: F401
