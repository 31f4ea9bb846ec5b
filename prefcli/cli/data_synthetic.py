"""`prefcli data synthetic`: write the synthetic taste world as Pick-a-Pic-schema parquet."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from prefcli.cli.data import data_app
from prefcli.cli.options import Format, FormatOpt


class Preset(str, Enum):
    default = "default"
    opposed = "opposed"
    consensus = "consensus"


@data_app.command("synthetic")
def synthetic_command(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the world here: shard-*.parquet (Pick-a-Pic v2 schema), world.json, users.parquet, images.parquet.",
        ),
    ] = None,
    preset: Annotated[
        Preset,
        typer.Option(
            "--preset",
            help="default: a few groups sharing part of their taste. opposed: two groups with opposed graded tastes, users 80/20 (the setting known to learn at toy scale). consensus: default with shared taste 0.85 (general taste dominates, as on real users).",
        ),
    ] = Preset.default,
    users: Annotated[int | None, typer.Option("--users", help="Number of simulated users.")] = None,
    groups: Annotated[int | None, typer.Option("--groups", help="Number of taste groups.")] = None,
    group_weights: Annotated[
        list[float] | None,
        typer.Option(
            "--group-weight",
            "--group-weights",
            help="Share of users in each group; repeat once per group (e.g. --group-weight 0.8 --group-weight 0.2).",
        ),
    ] = None,
    pairs_per_user: Annotated[
        int | None,
        typer.Option("--pairs-per-user", help="Labelled pairs per user (each user sees each image at most once)."),
    ] = None,
    noise: Annotated[
        float | None,
        typer.Option(
            "--noise", help="Label temperature: P(A over B) = sigmoid((u(A) - u(B)) / noise). Larger is noisier."
        ),
    ] = None,
    shared_taste: Annotated[
        float | None,
        typer.Option(
            "--shared-taste",
            min=0.0,
            max=1.0,
            help="default/consensus presets: share of the taste all groups have in common (0 = unrelated groups, 1 = one taste for all; the opposed preset ignores it).",
        ),
    ] = None,
    individual: Annotated[
        float | None,
        typer.Option(
            "--individual", help="A user's deviation from their group, relative to the group's taste strength."
        ),
    ] = None,
    image_size: Annotated[
        int | None, typer.Option("--image-size", help="Image side in pixels (32 and 64 are typical).")
    ] = None,
    prompts: Annotated[int | None, typer.Option("--prompts", help="Number of distinct prompts (contents).")] = None,
    images_per_prompt: Annotated[
        int | None, typer.Option("--images-per-prompt", help="Size of each prompt's image pool, shared across users.")
    ] = None,
    world_seed: Annotated[
        int | None, typer.Option("--world-seed", help="Seed of the world: prompts, images, taste groups.")
    ] = None,
    user_seed: Annotated[
        int | None,
        typer.Option("--user-seed", help="Seed of the people: a new seed draws new users from the same world."),
    ] = None,
    rows_per_shard: Annotated[int | None, typer.Option("--rows-per-shard", help="Pairs per parquet shard.")] = None,
    user_folders: Annotated[
        Path | None,
        typer.Option(
            "--user-folders",
            help="Also (or only, without --out) write one new user as liked/, disliked/, candidates/ folders with truth.json, for `prefcli rank`.",
        ),
    ] = None,
    history: Annotated[int, typer.Option("--history", help="History pairs in --user-folders.")] = 8,
    candidates: Annotated[int, typer.Option("--candidates", help="Candidates in --user-folders.")] = 8,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")] = True,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Write into an --out / --user-folders folder that holds files prefcli did not write (they are kept).",
        ),
    ] = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Write the synthetic taste world: rendered images, simulated users in taste groups, noisy labels.

    Images are drawn from visual attributes (content named by the prompt;
    hue, saturation, brightness, pattern, composition and detail as style).
    Each user belongs to a taste group and adds their own variation; they
    judge pairs of images of one prompt, and the label is sampled from a
    noisy utility. The output has the Pick-a-Pic v2 parquet schema, so
    `prefcli data pickapic` turns it into a dataset like the real one, and it
    keeps the ground truth (world.json, users.parquet, images.parquet) for
    reference accuracies. The same seeds always give the same bytes; an
    interrupted write resumes.

    Examples:

        prefcli data synthetic --out ./world

        prefcli data synthetic --out ./world --preset opposed --users 200 --image-size 32

        prefcli data synthetic --out ./test-users --preset opposed --user-seed 1 --group-weight 0.5 --group-weight 0.5

        prefcli data synthetic --out ./world --preset consensus --groups 6

        prefcli data synthetic --user-folders ./alice --format json
    """
    from prefcli import output
    from prefcli.data import synthetic
    from prefcli.errors import ConfigError

    if out is None and user_folders is None:
        raise ConfigError("prefcli data synthetic: give --out DIR, --user-folders DIR, or both")
    cfg = synthetic.WorldConfig.from_preset(
        preset.value,
        n_users=users,
        n_groups=groups,
        group_weights=tuple(group_weights) if group_weights else None,
        pairs_per_user=pairs_per_user,
        temperature=noise,
        shared_taste=shared_taste,
        sigma_individual=individual,
        image_size=image_size,
        n_prompts=prompts,
        images_per_prompt=images_per_prompt,
        world_seed=world_seed,
        user_seed=user_seed,
        rows_per_shard=rows_per_shard,
    )
    rows = []
    if out is not None:
        s = synthetic.write_world(out, cfg, progress=progress, overwrite=overwrite)
        rows.append(
            {
                "output": str(out),
                "rows": s["rows"],
                "users": s["users"],
                "users_per_group": "/".join(str(c) for c in s["users_per_group"]),
                "images": s["images"],
                "shards": s["shards"],
                "oracle_accuracy": s["oracle_accuracy"],
                "note": "already written, unchanged"
                if s.get("skipped")
                else (f"resumed {s['resumed_shards']} shard(s)" if s.get("resumed_shards") else ""),
            }
        )
    if user_folders is not None:
        import json

        d = synthetic.write_user_folders(
            user_folders, cfg, n_history=history, n_candidates=candidates, overwrite=overwrite
        )
        truth = json.loads((d / "truth.json").read_text())
        rows.append(
            {
                "output": str(d),
                "rows": history,
                "users": 1,
                "users_per_group": f"group {truth['group']}",
                "images": 2 * history + candidates,
                "shards": 0,
                "oracle_accuracy": None,
                "note": f"user {truth['user_id']} (new)",
            }
        )
    output.emit(rows, fmt.value, title="synthetic taste world")
