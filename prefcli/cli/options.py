"""Shared option types, so every command spells the same option the same way."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output as a terminal table, JSON, CSV or Markdown.")]
ScorerOpt = Annotated[str, typer.Option("--scorer", "-s", help="Scorer name (see `prefcli scorers`).")]
WeightsOpt = Annotated[
    Optional[str],
    typer.Option("--weights", "-w", help="Weights: 'tiny' (random, offline), a local path, 'hf-hub:org/name' (optionally '@revision') or an https URL. Default: the scorer's official weights."),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="Torch device: cpu, cuda, cuda:1, mps.")]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Never touch the network (also set by HF_HUB_OFFLINE=1).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
OutDirOpt = Annotated[Path, typer.Option("--out", "-o", help="Output directory.")]
