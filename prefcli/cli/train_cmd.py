"""`prefcli train`: train a preference model from a config, or size one up with --dry-run."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from prefcli.cli import app
from prefcli.cli.options import Format, FormatOpt

ConfigOpt = Annotated[
    str, typer.Option("--config", "-c", help="A shipped config name (see --list) or a YAML/TOML file.")
]


def _relaunch(num_processes: int) -> None:
    """Run this very command again under `accelerate launch` with N processes."""
    import subprocess

    args = list(sys.argv[1:])
    clean: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--num-processes":
            skip = True
            continue
        if a.startswith("--num-processes="):
            continue
        clean.append(a)
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        str(num_processes),
        "-m",
        "prefcli",
        *clean,
    ]
    print(f"prefcli: launching {num_processes} processes: {' '.join(cmd)}", file=sys.stderr)
    raise typer.Exit(subprocess.call(cmd))


def _dry_run_rows(res: dict) -> list[dict]:
    return [{k: (f"{v:,}" if isinstance(v, int) else v) for k, v in r.items()} for r in res["parameters"]]


@app.command("train")
def train_command(
    config: ConfigOpt = "tiny-cpu-cp",
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            "-d",
            help="Dataset directory (overrides the config's data.dataset; tiny-cpu configs build their synthetic world when none is given).",
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Run directory: checkpoints/, metrics.jsonl, model/.")] = Path(
        "runs/train"
    ),
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the newest checkpoint in --out (exactly where it stopped).")
    ] = False,
    max_steps: Annotated[
        int | None,
        typer.Option(
            "--max-steps",
            min=1,
            help="Stop after this optimizer step (the schedule stays the config's, so a later --resume continues exactly).",
        ),
    ] = None,
    num_processes: Annotated[
        int | None,
        typer.Option("--num-processes", min=1, help="Re-launch under `accelerate launch` with N processes (GPUs)."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Build the full-size architecture on the meta device (offline, no weights) and print parameter counts and a GPU memory estimate.",
        ),
    ] = False,
    list_configs: Annotated[bool, typer.Option("--list", help="List the shipped configs and exit.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")] = True,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            min=1,
            help="Torch CPU threads (overrides run.num_threads; the same seed, data and thread count give the same model bit for bit).",
        ),
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Train a preference model (preference tokens, ViPer*, ablations, tiny toy models) from a config.

    A config names the model (IDEFICS2-8B with QLoRA, or a tiny random one),
    the data, the optimizer and the stages (stage 1: L_all with LoRA; stage 2:
    preference tokens added). Every run writes `metrics.jsonl`, safetensors
    checkpoints (the last K kept) and, at the end, `model/` — a folder the
    preftoken scorer loads. Accelerate handles devices, mixed precision,
    gradient accumulation and multi-GPU: use `accelerate launch -m prefcli
    train ...` or `--num-processes N`. An interrupted run continues exactly
    with `--resume`. `--dry-run` prints what the full-size run would train and
    how much GPU memory a device needs, without a GPU or network.

    Examples:

        prefcli train --config tiny-cpu-cp --out runs/toy

        prefcli train --config tiny-cpu-cp --out runs/toy --resume

        prefcli train --dry-run --config preftoken-idefics2-8b --format json

        prefcli train --config preftoken-idefics2-8b --data data/pickapic --out runs/paper --num-processes 8

        accelerate launch -m prefcli train --config preftoken-idefics2-8b --data data/pickapic --out runs/paper
    """
    from prefcli import output
    from prefcli.readable import gib, per_second, seconds
    from prefcli.train.config import load_config, shipped_configs

    if list_configs:
        rows = []
        for name in shipped_configs():
            c = load_config(name)
            rows.append({"config": name, "steps": c.total_steps, "description": c.description})
        output.emit(
            rows, fmt.value, columns=["config", "steps", "description"], title="shipped configs", command="train"
        )
        return
    cfg = load_config(config, {"run": {"num_threads": threads}} if threads else None)
    if dry_run:
        if cfg.trainer == "pickscore":
            from prefcli.train.pickscore_star import dry_run_pickscore as run_dry
        else:
            from prefcli.train.dryrun import dry_run as run_dry

        res = run_dry(cfg, num_processes=num_processes or 1)
        if fmt is Format.json:
            from prefcli import envelope

            envelope.print_doc(
                envelope.envelope(
                    "train", res, options={"config": cfg.name, "dry_run": True, "num_processes": num_processes or 1}
                )
            )
            return
        output.emit(
            _dry_run_rows(res) if fmt is Format.table else res["parameters"],
            fmt.value,
            title=f"{cfg.name}: parameters per part (total / trainable per stage)",
        )
        mem = res["memory_per_device"]
        rows = [{"item": k.removesuffix("_gib"), "GiB": v} for k, v in mem.items() if k.endswith("_gib")]
        if fmt in (Format.table, Format.markdown):
            rows = [{**r, "GiB": gib(r["GiB"])} for r in rows]
        seq = mem["sequence_tokens"]  # a token count, not GiB: shown as one in the tables
        rows.append(
            {
                "item": res.get("sequence_label", "sequence tokens (N_ref pairs + target, 100-token prompts)"),
                "GiB": f"{seq:,} tokens" if fmt in (Format.table, Format.markdown) else seq,
            }
        )
        b = res["batch"]
        output.emit(
            rows,
            fmt.value,
            title=(
                f"estimated GPU memory per device, stage {mem['stage']} "
                f"({b['per_device_pairs']} pairs/device x {b['grad_accum']} accumulation "
                f"x {b['processes']} process(es) = {b['global_pairs']} pairs/step)"
            ),
        )
        return
    launched = "LOCAL_RANK" in os.environ or "ACCELERATE_PROCESS_INDEX" in os.environ
    if num_processes and num_processes > 1 and not launched:
        _relaunch(num_processes)
    if cfg.trainer == "pickscore":
        from prefcli.train.pickscore_star import train_pickscore as train
    else:
        from prefcli.train.loop import train

    def say(msg: str) -> None:
        print(f"prefcli: {msg}", file=sys.stderr)

    res = train(cfg, data=data, out=out, resume=resume, max_steps=max_steps, progress=progress, log=say)
    if "LOCAL_RANK" in os.environ and os.environ.get("RANK", "0") != "0":
        return
    row = res.as_dict()
    row["config"] = cfg.name
    if fmt is Format.json:
        from prefcli import envelope

        envelope.print_doc(
            envelope.envelope(
                "train",
                row,
                options={
                    "config": cfg.name,
                    "data": None if data is None else str(data),
                    "out": str(out),
                    "resume": resume,
                    "max_steps": max_steps,
                },
            )
        )
    else:
        if fmt in (Format.table, Format.markdown):
            row = {
                **row,
                "final_val_acc": "" if row["final_val_acc"] is None else f"{row['final_val_acc']:.3f}",
                "pairs_per_s": per_second(row["pairs_per_s"]),
                "seconds": seconds(row["seconds"]),
            }
        output.emit(
            [row],
            fmt.value,
            columns=[
                "config",
                "steps",
                "stopped_early",
                "final_val_acc",
                "pairs_per_s",
                "seconds",
                "out_dir",
                "model_dir",
            ],
            title="training run",
        )
