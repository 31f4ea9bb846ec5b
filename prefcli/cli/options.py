"""Shared option types, so every command spells the same option the same way."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from prefcli.bounds import seed_callback


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output as a terminal table, JSON, CSV or Markdown.")]
ScorerOpt = Annotated[str, typer.Option("--scorer", "-s", help="Scorer name (see `prefcli scorers`).")]
WeightsOpt = Annotated[
    str | None,
    typer.Option(
        "--weights",
        "-w",
        help="Weights: 'tiny' (random, offline), a local path, 'hf-hub:org/name' (optionally '@revision') or an https URL. Default: the scorer's official weights.",
    ),
]
DeviceOpt = Annotated[
    str, typer.Option("--device", help="Torch device: auto (cuda, else mps, else cpu), cpu, cuda, cuda:1, mps.")
]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Never touch the network (also set by HF_HUB_OFFLINE=1).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.", callback=seed_callback)]

# `-o KEY VALUE` (repeatable), simonw/llm's spelling, on every command that loads a scorer.
# Typer has no list-of-pairs type, so `OptionPairsCommand` joins each KEY VALUE
# into one token before parsing and `scorer_options` splits it again.
_PAIR_SEP = "\x1f"
OPTION_FLAGS = ("-o", "--option")
ScorerOptionsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        "-o",
        metavar="KEY VALUE",
        help="A scorer option, e.g. -o batch_size 8 or -o base ./idefics2 (repeatable; `prefcli scorers NAME` lists them).",
    ),
]
# The commands with several scorers (bench, bench images, generate, bench generate): SCORER.KEY or a bare KEY.
BenchOptionsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        "-o",
        metavar="SCORER.KEY VALUE",
        help="A scorer option for one scorer, e.g. -o hpsv2.version 2.0 (repeatable); KEY alone sets it for every scorer that has it.",
    ),
]


class DType(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


DTypeOpt = Annotated[
    DType,
    typer.Option(
        "--dtype",
        help="Model precision: auto (the scorer's choice: fp16 on CUDA for most), fp32, bf16 or fp16. Provenance records what was used.",
    ),
]
ProgressOpt = Annotated[
    bool,
    typer.Option(
        "--progress/--no-progress",
        help="Show progress on stderr: a bar on a terminal, a plain line every few seconds in a log (PREFCLI_PROGRESS_INTERVAL).",
    ),
]


_NUMBER = re.compile(r"^-\.?[0-9]")


def _is_flag(word: str) -> bool:
    """A word that starts another option (`--weights`, `-w`), not a value; a negative number is a value."""
    return word.startswith("-") and len(word) > 1 and not _NUMBER.match(word)


def join_option_pairs(args: list[str]) -> list[str]:
    """`-o KEY VALUE` → `--option KEY<sep>VALUE`, so Typer sees one value per option.

    Every `-o` takes exactly two words, a bool too (`-o percent true`): a KEY with no VALUE
    (the end of the line, or another option next) is an OptionError naming it, never the next word taken as its value.
    """
    from prefcli.errors import OptionError

    out: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            out.extend(args[i:])
            break
        if a in OPTION_FLAGS:
            if i + 1 >= len(args) or _is_flag(args[i + 1]):
                raise OptionError(f"{a}: no KEY VALUE after it (e.g. {a} batch_size 8)")
            key = args[i + 1]
            if i + 2 >= len(args) or _is_flag(args[i + 2]):
                raise OptionError(
                    f"{a} {key}: no value (every {a} takes KEY VALUE, e.g. {a} batch_size 8; a bool takes true or false)"
                )
            out.extend(["--option", f"{key}{_PAIR_SEP}{args[i + 2]}"])
            i += 3
            continue
        out.append(a)
        i += 1
    return out


def scorer_options(values: list[str] | None) -> dict[str, str]:
    """The `-o KEY VALUE` pairs as {KEY: VALUE} (a repeated KEY keeps the last value)."""
    from prefcli.errors import OptionError

    out: dict[str, str] = {}
    for v in values or []:
        if _PAIR_SEP not in v:
            raise OptionError(f"-o {v}: give a key and a value, e.g. -o batch_size 8")
        key, value = v.split(_PAIR_SEP, 1)
        out[key] = value
    return out


def comma_list(value: str | None) -> list[str]:
    """`a, b,,c` -> ["a", "b", "c"]: an option that names several things in one value."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _command_class():
    from typer.core import TyperCommand

    class OptionPairsCommand(TyperCommand):
        """A command whose `-o` takes two values (KEY VALUE)."""

        def parse_args(self, ctx, args):  # noqa: ANN001 - Click's signature
            return super().parse_args(ctx, join_option_pairs(list(args)))

    return OptionPairsCommand


OptionPairsCommand = _command_class()

# Outputs whose files are written one by one into --out (generate, bench generate): a file at an
# output name that prefcli did not write is never replaced without this.
OutputOverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite", help="Replace files at the output names that prefcli did not write (refused otherwise)."
    ),
]

# One person's history as two folders (rank, generate).
LikesOpt = Annotated[Path | None, typer.Option("--likes", help="Folder of images this person liked (their history).")]
DislikesOpt = Annotated[
    Path | None, typer.Option("--dislikes", help="Folder of images this person disliked (their history).")
]

# The dataset builders' own (data pickapic, preferimg-bench, pamela, labels).
DatasetNameOpt = Annotated[
    str | None, typer.Option("--name", help="Dataset name recorded in dataset.json (default: the folder name).")
]
NoProgressOpt = Annotated[bool, typer.Option("--no-progress", help="Do not show the progress bar.")]

# The input pipeline of rank, eval and bench (prefcli.harness.runner, prefcli.image_cache).
# --image-cache-mb's default, for the commands that take the option (light: no torch, no PIL).
from prefcli.image_cache import DEFAULT_MB as IMAGE_CACHE_MB  # noqa: E402, F401

WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=0,
        help="Threads decoding the next images while the model scores (0: decode in turn). Scores are the same. Default: the number of CPU cores.",
    ),
]
ImageCacheMbOpt = Annotated[
    float,
    typer.Option(
        "--image-cache-mb",
        min=0,
        help="Decoded images kept for reuse within the run (a history in every task, an image in several tasks), in MB; 0 decodes at every use.",
    ),
]
VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", help="Also print where the time went (decoding, preprocessing, the model) on stderr."
    ),
]


def workers_count(workers: int | None) -> int:
    """--workers as given, else the CPU cores this process may use."""
    if workers is not None:
        return int(workers)
    import os

    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1
