"""`prefcli data pickapic | info | prompts`: build a dataset, describe one, list benchmark prompts."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from prefcli.bounds import seed_callback
from prefcli.cli.data import data_app
from prefcli.cli.options import DatasetNameOpt, Format, FormatOpt, NoProgressOpt
from prefcli.cli.table_choice import TableOpt

_COUNT_COLUMNS = [
    "split",
    "users",
    "pairs",
    "images",
    "seen_users",
    "unseen_users",
    "seen_images",
    "unseen_images",
    "tasks_1v1",
    "tasks_1v3",
]


class HoldOut(str, Enum):
    seen = "seen"
    all = "all"
    user = "user"


def _print_problems(problems: list[dict], total: int, where: str) -> None:
    if not total:
        return
    print(f"prefcli: {total} problem(s) met and skipped (all recorded in {where}):", file=sys.stderr)
    for p in problems[:20]:
        at = f"{p['shard']}" + (f" row {p['row']}" if p.get("row") is not None else "")
        print(f"  {at}: {p['reason']}", file=sys.stderr)
    if total > 20:
        print(f"  ... and {total - 20} more", file=sys.stderr)


@data_app.command("pickapic")
def pickapic_command(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="A folder of Pick-a-Pic v2 parquet shards, or the hub dataset id yuvalkirstain/pickapic_v2 (streamed).",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Dataset folder to create (work happens in OUT.partial until the end).")
    ],
    n_ref: Annotated[
        int,
        typer.Option(
            "--n-ref", help="History pairs per evaluation task; the variants 1, 2, 4 below it are materialized too."
        ),
    ] = 8,
    min_liked: Annotated[
        int, typer.Option("--min-liked", help="Keep users with at least this many unique liked images.")
    ] = 11,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the user split and the task sampling.", callback=seed_callback)
    ] = 0,
    limit_shards: Annotated[
        int | None, typer.Option("--limit-shards", help="Read only the first K shards (in sorted order).")
    ] = None,
    val_users: Annotated[
        int | None,
        typer.Option("--val-users", help="Number of validation users (default: --val-frac of the eligible users)."),
    ] = None,
    test_users: Annotated[
        int | None,
        typer.Option("--test-users", help="Number of test users (default: --test-frac of the eligible users)."),
    ] = None,
    val_frac: Annotated[
        float, typer.Option("--val-frac", help="Share of eligible users for validation (paper: 89 of 2,426).")
    ] = 0.0367,
    test_frac: Annotated[
        float, typer.Option("--test-frac", help="Share of eligible users for test (paper: 70 of 2,426).")
    ] = 0.0289,
    seen_frac: Annotated[
        float, typer.Option("--seen-frac", help="Share of test users who are 'seen' (they also have training pairs).")
    ] = 0.5,
    seen_test_frac: Annotated[
        float,
        typer.Option(
            "--seen-test-frac", help="Share of a seen user's pairs held out for test (at least N_ref + 4 pairs)."
        ),
    ] = 0.25,
    hold_out: Annotated[
        HoldOut | None,
        typer.Option(
            "--hold-out",
            help="Images kept out of training pairs: 'seen' = seen test users' test images; 'all' = every val/test image; 'user' = a seen user's test images stay out of that user's own training pairs only. Default: 'user' for a synthetic world (shared image pool), else 'seen'.",
        ),
    ] = None,
    include: Annotated[
        str | None,
        typer.Option(
            "--include",
            help="Only shards whose path matches this glob (hub default: data/*.parquet without the *_unique splits).",
        ),
    ] = None,
    name: DatasetNameOpt = None,
    no_progress: NoProgressOpt = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Build a preference dataset from Pick-a-Pic v2 parquet shards with the paper's user split.

    Keeps labelled, different, non-tie pairs of users with at least --min-liked
    unique liked images, splits users into train / validation / test (test users
    are 'seen', with training pairs on other images, or 'unseen', with none),
    stores each kept image once under its sha256, and materializes the 1-vs-1 and
    1-vs-3 evaluation tasks with N_ref history pairs. The shards are streamed
    twice (metadata, then images) with bounded memory. An interrupted build
    resumes where it stopped when run again with the same options; a corrupt
    shard or image is reported and skipped. The synthetic world
    (`prefcli data synthetic`) writes the same schema and builds the same way.
    Rules and format: docs/data.md.

    Examples:

        prefcli data synthetic --out world && prefcli data pickapic --source world --out ds

        prefcli data pickapic --source ./pickapic_v2/data --out pickapic-user-split

        prefcli data pickapic --source yuvalkirstain/pickapic_v2 --out pap --val-users 89 --test-users 70
    """
    from prefcli import output
    from prefcli.data.dataset import count_rows
    from prefcli.data.pickapic import BuildParams, build

    params = BuildParams(
        n_ref=n_ref,
        min_liked=min_liked,
        seed=seed,
        limit_shards=limit_shards,
        val_users=val_users,
        test_users=test_users,
        val_frac=val_frac,
        test_frac=test_frac,
        seen_frac=seen_frac,
        seen_test_frac=seen_test_frac,
        hold_out=hold_out.value if hold_out else None,
        include=include,
        name=name,
    )
    result = build(source, out, params, progress=not no_progress)
    if result.already_built:
        import dataclasses

        from prefcli.errors import DataError

        # Handing back a dataset built with other options the user asked for explicitly
        # would silently give the wrong N_ref, split, ...; a plain rerun just reports it.
        given = {
            k
            for k in ctx.params
            if getattr(ctx.get_parameter_source(k), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")
        }
        recorded = result.info.get("build") or {}
        differ = [
            f"{k}={v!r} (built with {recorded[k]!r})"
            for k, v in dataclasses.asdict(params).items()
            if k in given and v is not None and k in recorded and recorded[k] != v
        ]
        if differ:
            raise DataError(
                f"{out}: already built with other options: {', '.join(differ)}; "
                "delete it or choose another --out to build with the new ones"
            )
        print(f"prefcli: {out} is already built (delete it to rebuild); its counts:", file=sys.stderr)
    output.emit(
        count_rows(result.info), fmt.value, columns=_COUNT_COLUMNS, title=f"dataset {result.info.get('name')} ({out})"
    )
    if not result.already_built:
        _print_problems(result.problems, len(result.problems), str(Path(out) / "dataset.json"))


@data_app.command("info")
def info_command(
    path: Annotated[Path, typer.Argument(help="A dataset folder (made by `prefcli data pickapic`).")],
    fmt: FormatOpt = Format.table,
    table: TableOpt = None,
) -> None:
    """Show a dataset's counts per split (users, pairs, images, seen/unseen, tasks) and how it was built.

    JSON output is one object: the per-split rows, the build parameters, the
    source and its counts, and the number of problems skipped during the build.

    Examples:

        prefcli data info ds

        prefcli data info ds --format json
    """
    from prefcli import output
    from prefcli.data.dataset import count_rows, read_info

    info = read_info(path)
    rows = count_rows(info)
    if fmt.value == "json":
        obj = {
            "name": info.get("name"),
            "path": str(path),
            "format_version": info.get("format_version"),
            "eligible_users": info.get("counts", {}).get("eligible_users"),
            "splits": rows,
            "counts": info.get("counts", {}),
            "build": info.get("build", {}),
            "source": {k: v for k, v in info.get("source", {}).items() if k != "shards"},
            "source_stats": info.get("source_stats", {}),
            "problems_total": info.get("problems_total", 0),
        }
        from prefcli import envelope

        envelope.print_doc(envelope.envelope("data info", obj, options={"path": str(path)}))
        return
    rated = ["ratings", "tasks_rating"] if any(r.get("ratings") for r in rows) else []  # format-2 rated datasets
    src = info.get("source", {})
    params = [
        {
            "key": "source",
            "value": f"{src.get('kind')}: {src.get('location')}"
            + (f"@{src['revision']}" if src.get("revision") else ""),
        }
    ]
    params.append({"key": "eligible_users", "value": info.get("counts", {}).get("eligible_users")})
    params += [{"key": k, "value": v} for k, v in info.get("build", {}).items()]
    params += [{"key": k, "value": v} for k, v in info.get("source_stats", {}).items()]
    params.append({"key": "problems_skipped", "value": info.get("problems_total", 0)})
    from prefcli.cli.table_choice import print_tables

    print_tables(
        [
            (
                "splits",
                lambda f: output.emit(
                    rows, f, columns=_COUNT_COLUMNS + rated, title=f"dataset {info.get('name')} ({path})"
                ),
            ),
            ("build", lambda f: output.emit(params, f, columns=["key", "value"], title="build")),
        ],
        fmt.value,
        table,
    )


class PromptSet(str, Enum):
    hpsv2 = "hpsv2"
    imagereward = "imagereward"


@data_app.command("prompts")
def prompts_command(
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="Local folder (or file) with the prompt JSON files; default: the hub (hpsv2: zhwang/HPDv2, benchmark/).",
        ),
    ] = None,
    style: Annotated[
        list[str] | None,
        typer.Option(
            "--style",
            help="HPSv2 style(s) to list: anime, concept-art, paintings, photo. Without it: a count per style.",
        ),
    ] = None,
    prompt_set: Annotated[
        PromptSet, typer.Option("--set", help="Which benchmark: hpsv2 (4 styles x 800) or imagereward (100 prompts).")
    ] = PromptSet.hpsv2,
    fmt: FormatOpt = Format.table,
) -> None:
    """List benchmark prompts: the HPSv2 benchmark (anime, concept-art, paintings, photo; 800 each) or ImageReward's 100.

    Upstream order and duplicates are kept, so `index` matches the official
    benchmark image names. Without --style, prints how many prompts each style
    has.

    Examples:

        prefcli data prompts --source ../shared/data/hpsv2_benchmark

        prefcli data prompts --source ./hpsv2_benchmark --style photo --format json

        prefcli data prompts --set imagereward --source ./benchmark-prompts.json
    """
    from prefcli import output
    from prefcli.data.prompts import load_hpsv2_prompts, load_imagereward_prompts

    if prompt_set is PromptSet.imagereward:
        items = load_imagereward_prompts(source)
        rows = [{"index": i, "id": it["id"], "prompt": it["prompt"]} for i, it in enumerate(items)]
        output.emit(rows, fmt.value, columns=["index", "id", "prompt"], title="ImageReward benchmark prompts")
        return
    prompts = load_hpsv2_prompts(source, styles=style or None)
    if style:
        rows = [{"style": s, "index": i, "prompt": p} for s in prompts for i, p in enumerate(prompts[s])]
        output.emit(rows, fmt.value, columns=["style", "index", "prompt"], title="HPSv2 benchmark prompts")
    else:
        rows = [{"style": s, "prompts": len(ps), "unique": len(set(ps))} for s, ps in prompts.items()]
        output.emit(rows, fmt.value, columns=["style", "prompts", "unique"], title="HPSv2 benchmark prompts")
