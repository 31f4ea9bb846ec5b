"""`prefcli generate`: steer a one-step text-to-image model towards one person's taste (ReNO)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefcli.cli import app
from prefcli.cli.options import (
    BenchOptionsOpt,
    DeviceOpt,
    DislikesOpt,
    Format,
    FormatOpt,
    LikesOpt,
    OutputOverwriteOpt,
    ProgressOpt,
    comma_list,
)

RewardOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--reward",
        "-r",
        help="A reward and its weight, NAME=WEIGHT (repeatable), e.g. preftoken=0.75 or hpsv2=5. Any differentiable scorer. Default: the --preset's.",
    ),
]
WeightsListOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--weights",
        "-w",
        help="Weights for every reward and judge ('tiny', a path, hf-hub:...) or NAME=SPEC for one; repeatable. Default: each scorer's official weights.",
    ),
]
JudgeOpt = Annotated[
    str | None,
    typer.Option(
        "--judge",
        help="Held-out scorers (comma-separated, not among the rewards) that score the unguided and the final image, so reward hacking shows.",
    ),
]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Generator: sd-turbo, sdxl-turbo, flux-schnell, a hub id, a local diffusers folder, or tiny (random, offline).",
    ),
]
PresetOpt = Annotated[
    str | None,
    typer.Option(
        "--preset",
        help="paper (preftoken 0.75, 30 iterations) or reno (HPSv2.1 5, ImageReward 1, CLIP 0.01, PickScore 0.05, 50 iterations). Default: paper with --likes/--dislikes, else reno.",
    ),
]
DTypeStrOpt = Annotated[
    str,
    typer.Option(
        "--dtype",
        help="Weights dtype: auto (float16 on a GPU, bfloat16 for FLUX, float32 on the CPU), float32, float16, bfloat16. The latent and the regularizer stay float32.",
    ),
]


def _pairs_command():
    """The command class whose `-o` takes two values (KEY VALUE): prefcli.cli.options' own."""
    from prefcli.cli.options import OptionPairsCommand

    return OptionPairsCommand


def _option_pairs(values: list[str] | None) -> list[tuple[str, str]]:
    """The `-o SCORER.KEY VALUE` pairs, in order (a repeated key keeps its last value)."""
    from prefcli.cli.options import scorer_options

    return list(scorer_options(values).items())


def _terms(rewards: dict) -> str:
    return " ".join(f"{k} {v:.4g}" for k, v in rewards.items())


@app.command("generate", cls=_pairs_command())
def generate_command(
    prompt: Annotated[str, typer.Argument(help="The text prompt.", show_default=False)],
    likes: LikesOpt = None,
    dislikes: DislikesOpt = None,
    history_prompts: Annotated[
        Path | None,
        typer.Option(
            "--history-prompts",
            help="Prompts of the history images: JSON {file: prompt} or CSV file,prompt. Default: prompts.json/prompts.csv in or beside the folders.",
        ),
    ] = None,
    model: ModelOpt = "sd-turbo",
    reward: RewardOpt = None,
    preset: PresetOpt = None,
    option: BenchOptionsOpt = None,
    weights: WeightsListOpt = None,
    judge: JudgeOpt = None,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps",
            help="Iterations (each generates and scores one image; the last takes no step). Default: the preset's (30 paper, 50 reno).",
        ),
    ] = None,
    lr: Annotated[float, typer.Option("--lr", help="SGD learning rate (momentum 0.9, Nesterov), ReNO's 5.")] = 5.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the initial noise (the first one with --n).")] = 0,
    n: Annotated[int, typer.Option("--n", min=1, help="Images to make, from seeds S, S+1, ...")] = 1,
    out: Annotated[
        Path, typer.Option("--out", help="Output folder (images, unguided images, JSON sidecars, strips).")
    ] = Path("generated"),
    save_every: Annotated[
        int | None,
        typer.Option(
            "--save-every", min=1, help="Also write a strip of the image every K iterations and the best one."
        ),
    ] = None,
    device: DeviceOpt = "auto",
    dtype: DTypeStrOpt = "auto",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the options, state parameters and estimated GPU memory, and stop.")
    ] = False,
    overwrite: OutputOverwriteOpt = False,
    fmt: FormatOpt = Format.table,
    show_progress: ProgressOpt = True,
) -> None:
    """Optimize the initial noise of a one-step generator towards rewards (ReNO).

    Each iteration makes one image from the latent with gradients, scores it
    with every --reward (each with its own differentiable preprocessing) and
    takes an SGD step on Σ w·(c − reward) plus ReNO's norm regularizer; the
    image with the best reward loss is kept. A personalized reward (preftoken,
    viper) reads the history in --likes/--dislikes once; that conditioned
    prefix is reused by every iteration.

    Writes, per seed, STEM.png (the result), STEM.unguided.png (same seed, no
    optimization), STEM.json (prompt, seed, weights with revisions, options,
    every iteration's reward terms and loss, judge scores) and with
    --save-every K a strip STEM.strip.png. A seed already finished with the
    same settings is not made again.

    Examples:

        prefcli generate "a cat in a garden" --likes ./liked --dislikes ./disliked --weights preftoken=runs/stage2/final

        prefcli generate "a red dog and a green cat" --preset reno --model sdxl-turbo --n 4

        prefcli generate "a fox" --model tiny --reward clip=1 --weights tiny --steps 10 --save-every 2
    """
    from prefcli.errors import ConfigError
    from prefcli.generate.rewards import PRESETS, parse_rewards, parse_scorer_options, parse_weights
    from prefcli.generate.run import GenerateConfig, check_generate_numbers

    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"--preset {preset}: choose from {', '.join(PRESETS)}")
    if steps is not None and steps < 1:
        raise ConfigError(f"--steps must be at least 1, got {steps}")
    check_generate_numbers(seed=seed, n=n, lr=lr, dtype=dtype)
    judges = comma_list(judge)
    cfg = GenerateConfig(
        prompt=prompt, model=model, rewards=parse_rewards(reward or []), preset=preset, steps=steps, lr=lr, seed=seed, n=n,
        out=str(out), save_every=save_every, dtype=dtype, weights=parse_weights(weights or []), judges=judges,
        likes=None if likes is None else str(likes), dislikes=None if dislikes is None else str(dislikes),
        history_prompts=None if history_prompts is None else str(history_prompts), overwrite=overwrite,
    ).resolved()  # fmt: skip
    cfg.options = parse_scorer_options(_option_pairs(option), [n for n, _ in cfg.rewards] + judges)
    from prefcli.devices import resolve_device

    cfg.device = resolve_device(device)
    if dry_run:
        from prefcli.generate.dryrun import dry_run as plan

        rows = plan(cfg)
        _emit(rows, fmt, ["part", "name", "parameters", "dtype", "memory_gb", "note"], "prefcli generate --dry-run")
        return
    _run(cfg, fmt, show_progress)


def _emit(rows: list[dict], fmt: Format, columns: list[str], title: str) -> None:
    from prefcli import output

    output.emit(rows, fmt.value, columns=columns, title=title)


def _run(cfg, fmt: Format, show_progress: bool = True) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from prefcli.generate.run import generate
    from prefcli.progress import note, progress_bar

    bar = progress_bar(
        show_progress,
        [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[terms]}"),
        ],
        fields={"terms": ""},
        transient=True,
    )
    task = None
    started = False
    seed_no = 0

    def on_iteration(it) -> None:
        nonlocal task, started
        if not started:
            bar.start()
            started = True
        stage = f"optimizing seed {cfg.seed + seed_no}"
        terms = f"{_terms(it.rewards)} · loss {it.reward_loss:.4g}"
        if task is None:
            task = bar.add_task(stage, total=cfg.steps, terms=terms)
        elif it.index == 0:
            bar.reset(task, total=cfg.steps, description=stage)
        bar.update(task, completed=it.index + 1, description=stage, terms=terms)

    def on_seed(rec, fresh: bool) -> None:
        nonlocal seed_no
        seed_no += 1
        done = "made" if fresh else "already made, kept"
        note(
            bar,
            f"seed {rec['seed']}: {done} {Path(cfg.out) / rec['files']['image']} · reward loss {rec['unguided']['reward_loss']:.4g} → {rec['final']['reward_loss']:.4g} (best at iteration {rec['best_iteration']})",
        )

    try:
        records = generate(cfg, on_iteration=on_iteration, on_seed=on_seed)
    finally:
        if started:
            bar.stop()
    if fmt is Format.json:
        from prefcli import envelope

        images = [{k: v for k, v in r.items() if k != "iterations"} for r in records]
        used = {s["name"]: s for r in records for s in [*r.get("rewards", []), *r.get("judges", [])]}
        given = cfg.weights or {}
        envelope.print_doc(
            envelope.envelope(
                "generate",
                {"images": images},
                options={k: v for k, v in cfg.__dict__.items() if k != "weights"},
                scorers={n: {"weights": given.get(n), "revision": s.get("weights")} for n, s in used.items()},
            )
        )
        return
    rows = []
    for r in records:
        row = {"seed": r["seed"], "image": str(Path(cfg.out) / r["files"]["image"]), "best_it": r["best_iteration"]}
        for name, v in r["unguided"]["rewards"].items():
            row[f"{name} unguided"] = v
            row[f"{name} final"] = r["final"]["rewards"][name]
        for name, v in r.get("judge_scores", {}).items():
            row[f"{name} unguided (judge)"] = v["unguided"]
            row[f"{name} final (judge)"] = v["final"]
        rows.append(row)
    _emit(
        rows,
        fmt,
        list(rows[0]) if rows else [],
        f"prefcli generate · {cfg.preset if not cfg.rewards else ', '.join(f'{n}={w:g}' for n, w in cfg.rewards)}",
    )
