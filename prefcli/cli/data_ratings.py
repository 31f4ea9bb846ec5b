"""`prefcli data pamela | synthetic-ratings`: rated datasets (PAMELA, and the synthetic world's ratings)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from prefcli.bounds import seed_callback
from prefcli.cli.data import data_app
from prefcli.cli.data_benchmarks import report_built
from prefcli.cli.options import DatasetNameOpt, Format, FormatOpt, NoProgressOpt


@data_app.command("pamela")
def pamela_command(
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="A folder holding PAMELA's split files (pamela_train, pamela_{val,test}_{seen,unseen}) and images, or the hub id bethgelab/PAMELA.",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Dataset folder to create (work happens in OUT.partial until the end).")
    ],
    n_ref: Annotated[
        int,
        typer.Option(
            "--n-ref",
            help="Rated history images per evaluation task; the variants 1, 2, 4, ... below it are materialized too.",
        ),
    ] = 16,
    pairs_per_user: Annotated[
        int,
        typer.Option(
            "--pairs-per-user",
            help="1-vs-1 tasks per val/test user: pairs of their rated images with different ratings.",
        ),
    ] = 20,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the history and pair draws.", callback=seed_callback)
    ] = 0,
    name: DatasetNameOpt = None,
    no_progress: NoProgressOpt = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Import PAMELA's personalized ratings (arXiv 2604.07427) as a rated dataset with its seen/unseen user split.

    Every rating becomes a row of ratings.parquet; val/test users get a
    `rating` task (predict each of their held-out ratings from a history of
    --n-ref of their ratings: training ratings for seen users, some of their
    own for unseen users) and `1v1` tasks (two of their images with different
    ratings). `prefcli bench` then reports per-user Spearman and Kendall,
    pairwise accuracy and calibrated MAE beside the 1-vs-1 table. What the
    loader assumes of the files (their exact layout could not be confirmed
    offline) is listed in prefcli/data/pamela_format.py; a file that does not
    match says so in one line. Bad rows are reported and skipped; an
    interrupted import resumes.

    Examples:

        prefcli data synthetic-ratings --out rated-world && prefcli data pamela --source rated-world --out rated

        prefcli data pamela --source ./PAMELA --out pamela --n-ref 16
    """
    from prefcli.data.pamela import PamelaParams, build

    result = build(
        source,
        out,
        PamelaParams(n_ref=n_ref, pairs_per_user=pairs_per_user, seed=seed, name=name),
        progress=not no_progress,
    )
    report_built(result, out, fmt)


@data_app.command("synthetic-ratings")
def synthetic_ratings_command(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder to write (PAMELA's layout: split CSVs and images/).")
    ],
    preset: Annotated[str, typer.Option("--preset", help="Synthetic world preset: default or opposed.")] = "default",
    users: Annotated[int, typer.Option("--users", help="People in the world.")] = 40,
    ratings_per_user: Annotated[
        int, typer.Option("--ratings-per-user", help="Images each person rates (from the shared pool).")
    ] = 60,
    levels: Annotated[int, typer.Option("--levels", help="Likert steps (ratings 1..levels).")] = 7,
    noise: Annotated[
        float, typer.Option("--noise", help="Rating noise, in standard deviations of the person's utility.")
    ] = 0.5,
    unseen_frac: Annotated[
        float, typer.Option("--unseen-frac", help="Share of people only in val/test (unseen users).")
    ] = 0.25,
    image_size: Annotated[int, typer.Option("--image-size", help="Rendered image side in pixels.")] = 32,
    world_seed: Annotated[int, typer.Option("--world-seed", help="Seed of prompts, images and taste groups.")] = 0,
    user_seed: Annotated[int, typer.Option("--user-seed", help="Seed of the people.")] = 0,
    fmt: FormatOpt = Format.table,
) -> None:
    """Write the synthetic taste world as Likert ratings in PAMELA's layout, offline.

    Each person rates --ratings-per-user images of the shared pool; the rating
    is their utility (group taste plus individual variation, as in `prefcli
    data synthetic`) plus --noise, cut into --levels equally likely steps.
    `prefcli data pamela --source OUT` turns it into a rated dataset exactly
    as it would the real files; truth.json holds the noise-free utilities.

    Examples:

        prefcli data synthetic-ratings --out rated-world --users 40 --ratings-per-user 60

        prefcli data pamela --source rated-world --out rated && prefcli bench rated --scorers clip,clip-probe --weights tiny
    """
    from prefcli import output
    from prefcli.data.synthetic import WorldConfig
    from prefcli.data.synthetic_ratings import RatingConfig, write_rating_world

    world = WorldConfig.from_preset(
        preset, n_users=users, image_size=image_size, world_seed=world_seed, user_seed=user_seed
    )
    summary = write_rating_world(
        out, world, RatingConfig(ratings_per_user=ratings_per_user, levels=levels, noise=noise, unseen_frac=unseen_frac)
    )
    rows = [{"split": k, "ratings": v} for k, v in summary["ratings"].items()]
    output.emit(
        rows,
        fmt.value,
        columns=["split", "ratings"],
        title=f"rated world in {out}: {summary['users']} people "
        f"({summary['unseen_users']} unseen), {summary['images']} images",
    )
    print(f"prefcli: next: prefcli data pamela --source {out} --out DATASET", file=sys.stderr)
