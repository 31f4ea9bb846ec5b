"""`prefcli bench generate`: the paper's table 4 (HPSv2 of personalized generation), as a subcommand of bench.

`prefcli bench DATASET` stays one command; `BenchCommand` hands `bench generate ...`
to this module's own Typer app, so neither command's options leak into the other.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from prefcli.bounds import seed_callback
from prefcli.cli.generate_cmd import DTypeStrOpt, RewardOpt, WeightsListOpt
from prefcli.cli.options import (
    BenchOptionsOpt,
    DeviceOpt,
    Format,
    FormatOpt,
    OptionPairsCommand,
    OutputOverwriteOpt,
    ProgressOpt,
    comma_list,
    scorer_options,
)

bench_generate_app = typer.Typer(
    add_completion=False, pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]}
)


@bench_generate_app.command("generate", cls=OptionPairsCommand)
def bench_generate_command(
    prompts: Annotated[
        str,
        typer.Option(
            "--prompts",
            help="hpsv2 (the benchmark's prompts from the hub, zhwang/HPDv2), or a folder holding anime.json, concept-art.json, paintings.json, photo.json.",
        ),
    ] = "hpsv2",
    styles: Annotated[
        str | None,
        typer.Option(
            "--styles", help="Comma-separated subset of anime, concept-art, paintings, photo (default: all four)."
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N prompts of each style.")] = None,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Output folder: unguided/ and guided/ in hpsv2's layout, history/, runs/ (sidecars), table4.{md,csv,json,tex}.",
        ),
    ] = Path("bench-generate"),
    model: Annotated[
        str, typer.Option("--model", "-m", help="The generator that is optimized (and makes the disliked history).")
    ] = "sd-turbo",
    liked_model: Annotated[
        str, typer.Option("--liked-model", help="The generator of the liked history images.")
    ] = "flux-schnell",
    disliked_model: Annotated[
        str | None,
        typer.Option("--disliked-model", help="The generator of the disliked history images (default: --model)."),
    ] = None,
    reward: RewardOpt = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Iterations per prompt (the paper: 30).")] = 30,
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            help="Seed of every target's initial noise (history images use seeds 1000-1002).",
            callback=seed_callback,
        ),
    ] = 0,
    judges: Annotated[
        str | None,
        typer.Option(
            "--judges",
            help="More held-out scorers as columns beside HPSv2 (comma-separated), e.g. imagereward,pickscore.",
        ),
    ] = None,
    option: BenchOptionsOpt = None,
    weights: WeightsListOpt = None,
    device: DeviceOpt = "auto",
    dtype: DTypeStrOpt = "auto",
    fmt: FormatOpt = Format.table,
    show_progress: ProgressOpt = True,
    overwrite: OutputOverwriteOpt = False,
) -> None:
    """The paper's table 4: HPSv2 score per style of personalized generation, beside the unguided baseline.

    Per prompt, the user's history is 3 --liked-model images (FLUX-schnell,
    liked) and 3 --model images (SD-Turbo, disliked) of that prompt; the
    target is a --model image optimized with the preference model (weight
    0.75, 30 iterations). HPSv2 (v2.1, 100 · cos) scores the unguided and the
    guided image; a style's score is the mean of its 80-image chunk means, the
    average is over all images, as hpsv2's evaluate computes them; ± is the
    standard error over images. An image already made is not made again.

    Examples:

        prefcli bench generate --prompts hpsv2 --weights preftoken=runs/stage2/final --judges imagereward --device cuda

        prefcli bench generate --prompts ../shared/data/hpsv2_benchmark --limit 2 --model tiny --liked-model tiny:1 --weights tiny --weights preftoken=tiny-opposed-cp --steps 3
    """
    from prefcli.devices import resolve_device
    from prefcli.errors import ConfigError
    from prefcli.generate.bench import BenchGenerateConfig, display_rows, run
    from prefcli.generate.rewards import parse_rewards, parse_scorer_options, parse_weights
    from prefcli.generate.run import check_generate_numbers

    check_generate_numbers(seed=seed, dtype=dtype)
    rewards = parse_rewards(reward or []) or [("preftoken", 0.75)]
    judge_list = comma_list(judges)
    cfg = BenchGenerateConfig(
        prompts=None if prompts in ("hpsv2", "hf-hub") else prompts, styles=comma_list(styles), limit=limit, out=str(out), model=model,
        liked_model=liked_model, disliked_model=disliked_model or model, rewards=rewards, steps=steps, seed=seed, judges=judge_list,
        weights=parse_weights(weights or []), options=parse_scorer_options(list(scorer_options(option).items()), [n for n, _ in rewards] + judge_list + ["hpsv2"]),
        device=resolve_device(device), dtype=dtype, overwrite=overwrite,
    )  # fmt: skip
    if "hpsv2" in [n for n, _ in rewards]:
        raise ConfigError("--reward hpsv2: HPSv2 is the benchmark's metric, so it cannot also be the reward here")

    from prefcli.progress import bars_by_name

    with bars_by_name(show_progress) as progress:  # one bar per phase
        data = run(cfg, progress=progress)
    c = data["counts"]
    print(f"made {c['liked']} liked and {c['disliked']} disliked history images, optimized {c['optimized']} prompt(s), "
          f"kept {c['kept']} finished before; wrote {out}/table4.md, .csv, .json, .tex", file=sys.stderr)  # fmt: skip
    if fmt is Format.json:
        from prefcli import envelope
        from prefcli.generate.bench import table4_document

        envelope.print_doc(table4_document(data))
        return
    from prefcli import output

    rows, cols = display_rows(data)
    output.emit(rows, fmt.value, columns=cols, title="Table 4: HPSv2 of personalized generation")
