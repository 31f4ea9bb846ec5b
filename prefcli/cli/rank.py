"""`prefcli rank`: rank a folder of images for one person, best first."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from prefcli.cli import app
from prefcli.cli.options import (
    IMAGE_CACHE_MB,
    DeviceOpt,
    DislikesOpt,
    DType,
    DTypeOpt,
    Format,
    FormatOpt,
    ImageCacheMbOpt,
    LikesOpt,
    OfflineOpt,
    OptionPairsCommand,
    ProgressOpt,
    ScorerOptionsOpt,
    VerboseOpt,
    WorkersOpt,
    scorer_options,
    workers_count,
)
from prefcli.ranking import DEFAULT_PERSONAL_SCORER, DEFAULT_SCORER  # noqa: E402 - light: no torch at import


@app.command("rank", cls=OptionPairsCommand)
def rank_command(
    candidates: Annotated[
        Path,
        typer.Argument(
            help="Folder of candidate images to rank (subfolders only with --recursive).", show_default=False
        ),
    ],
    likes: LikesOpt = None,
    dislikes: DislikesOpt = None,
    pairs: Annotated[
        Path | None,
        typer.Option(
            "--pairs",
            help="Pair history images explicitly: CSV with columns liked,disliked[,prompt] or JSON. Default: pair by sorted file name.",
        ),
    ] = None,
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="One prompt for every candidate (for scorers that need a prompt).")
    ] = None,
    prompts: Annotated[
        Path | None,
        typer.Option(
            "--prompts",
            help="One prompt per file: JSON {file: prompt} or CSV with columns file,prompt. Also used for history images.",
        ),
    ] = None,
    history_prompts: Annotated[
        Path | None,
        typer.Option(
            "--history-prompts",
            help="Prompts of the history images (JSON or CSV as --prompts). Default: prompts.json/prompts.csv inside or beside the likes/dislikes folders.",
        ),
    ] = None,
    scorer: Annotated[
        list[str] | None,
        typer.Option(
            "--scorer",
            "-s",
            help=f"Scorer name (see `prefcli scorers`). Default: {DEFAULT_PERSONAL_SCORER} with a history, else {DEFAULT_SCORER}. Repeat it to rank by several scorers at once, NAME=WEIGHT to weigh one in the combination (see --combine).",
        ),
    ] = None,
    combine: Annotated[
        str,
        typer.Option(
            "--combine",
            help="With several --scorer: mean-rank (each scorer's rank of the image, averaged; lower is better) or z-mean (each scorer's z-score, averaged; higher is better), weighted by NAME=WEIGHT.",
        ),
    ] = "mean-rank",
    weights: Annotated[
        list[str] | None,
        typer.Option(
            "--weights",
            "-w",
            help="Weights: 'tiny' (random, offline), a local path, 'hf-hub:org/name' (optionally '@revision') or an https URL; NAME=SPEC for one of several scorers (repeatable). Default: the scorer's official weights.",
        ),
    ] = None,
    option: ScorerOptionsOpt = None,
    device: DeviceOpt = "auto",
    dtype: DTypeOpt = DType.auto,
    offline: OfflineOpt = False,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images scored per batch.")] = 16,
    top: Annotated[int | None, typer.Option("--top", "-k", min=1, help="Show only the best K images.")] = None,
    fmt: FormatOpt = Format.table,
    sheet: Annotated[
        Path | None,
        typer.Option(
            "--sheet",
            help="Also write a contact sheet (.jpg, .png or .webp): thumbnails in rank order with rank, score and file name.",
        ),
    ] = None,
    recursive: Annotated[
        bool,
        typer.Option(
            "--recursive", "-r", help="Include images in subfolders (the likes/dislikes folders are still left out)."
        ),
    ] = False,
    sheet_thumb: Annotated[
        int, typer.Option("--sheet-thumb", min=16, help="Contact sheet: thumbnail size in pixels.")
    ] = 192,
    sheet_columns: Annotated[
        int | None,
        typer.Option(
            "--sheet-columns",
            min=1,
            help="Contact sheet: thumbnails per row (default: a roughly square grid, at most 6).",
        ),
    ] = None,
    sheet_history: Annotated[
        bool,
        typer.Option(
            "--sheet-history",
            help="Contact sheet: also show the person's liked (+) and disliked (-) history as a strip.",
        ),
    ] = False,
    sheet_prompt: Annotated[
        bool, typer.Option("--sheet-prompt", help="Contact sheet: also show the --prompt under the title.")
    ] = False,
    show_progress: ProgressOpt = True,
    workers: WorkersOpt = None,
    image_cache_mb: ImageCacheMbOpt = IMAGE_CACHE_MB,
    verbose: VerboseOpt = False,
) -> None:
    """Rank every image in a folder for one person, best first.

    With a history and no --scorer, the scorer is blend: a general scorer
    (pickscore when every candidate has a prompt, else aesthetic) plus
    clip-probe, weighted per person by how well each ordered this person's
    own history (see docs/scorers/blend.md).

    A personalized scorer (such as clip-probe) learns this person's taste from
    the images in --likes and --dislikes, paired by sorted file name (or by
    --pairs FILE), and scores each candidate by how likely they are to like
    it. A history-free scorer (such as aesthetic, or clip with a prompt)
    scores the images alone and ignores --likes/--dislikes.

    Files that cannot be read (truncated, empty, not an image) are reported
    on stderr as "skipped NAME: reason" and left out; the rest are still
    ranked. Subfolders are not candidates unless --recursive is given. Ties
    are ordered by path, so the output is the same on every run. The table
    goes to stdout (also as --format json, csv or markdown); notes and the
    progress bar go to stderr.

    Examples:

        prefcli rank ./candidates --likes ./liked --dislikes ./disliked

        prefcli rank ../shared/data/viper_examples --likes ../shared/data/viper_examples/liked --dislikes ../shared/data/viper_examples/disliked --scorer clip-probe --weights tiny --format json

        prefcli rank ./candidates --scorer clip --prompt "a red fox in the snow" --top 5 --sheet best.jpg

        prefcli rank ./candidates --scorer aesthetic --format csv > scores.csv

        prefcli rank ./candidates --likes ./liked --dislikes ./disliked --scorer viper -o base ./idefics2-8b --weights ./metric-viper --offline

        prefcli rank ./candidates --prompts prompts.json --scorer pickscore --scorer hpsv2=2 --scorer clip-probe --likes ./liked --dislikes ./disliked --combine z-mean
    """
    from prefcli import output
    from prefcli.harness.handle import ScorerHandle
    from prefcli.progress import progress_bar
    from prefcli.ranking import rank_folder

    if offline:
        # Read by prefcli.weights (and huggingface_hub) when weights are resolved.
        os.environ["PREFCLI_OFFLINE"] = "1"
        os.environ["HF_HUB_OFFLINE"] = "1"
    from prefcli.multirank import parse_scorers
    from prefcli.weights import split_specs

    personal = likes is not None or dislikes is not None or pairs is not None
    chosen = parse_scorers(scorer or []) or [(DEFAULT_PERSONAL_SCORER if personal else DEFAULT_SCORER, 1.0)]
    default_weights, named_weights = split_specs(weights or [], [n for n, _ in chosen])
    if len(chosen) > 1:
        from prefcli.cli.rank_multi import rank_several

        return rank_several(chosen, combine, default_weights, named_weights, option, candidates=candidates, device=device,
                            dtype=dtype.value, likes=likes, dislikes=dislikes, pairs=pairs, prompt=prompt, prompts=prompts,
                            history_prompts=history_prompts, batch_size=batch_size, workers=workers_count(workers),
                            image_cache_mb=image_cache_mb, top=top, recursive=recursive,
                            sheet=sheet, sheet_options={"thumb": sheet_thumb, "columns": sheet_columns, "history": sheet_history,
                                                        "prompt": sheet_prompt},
                            fmt=fmt.value, show_progress=show_progress)  # fmt: skip
    name = chosen[0][0]
    weights = named_weights.get(name, default_weights)

    # The bar starts with the first scored batch, so an error found while
    # checking the input is one clean line with no bar residue around it.
    bar = progress_bar(show_progress, transient=True)
    task = None

    def progress(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(f"scoring with {name}", total=total)
        bar.update(task, completed=done, total=total)

    # The scorer, its options and the device, resolved once (a bad one fails before any image is read).
    handle = ScorerHandle(name, weights, device=device, dtype=dtype.value, options=scorer_options(option))
    try:
        result = rank_folder(
            candidates,
            scorer=handle,
            likes=likes,
            dislikes=dislikes,
            pairs=pairs,
            prompt=prompt,
            prompts=prompts,
            history_prompts=history_prompts,
            batch_size=batch_size,
            workers=workers_count(workers),
            image_cache_mb=image_cache_mb,
            top=top,
            recursive=recursive,
            sheet=sheet,
            sheet_options={
                "thumb": sheet_thumb,
                "columns": sheet_columns,
                "history": sheet_history,
                "prompt": sheet_prompt,
            },
            progress=progress,
        )
    finally:
        if task is not None:
            bar.stop()

    for path, reason in result.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)

    summary = f"ranked {result.total} image(s) in {candidates} with {result.scorer}"
    summary += f" (weights {result.weights_id})" if result.weights_id else ""
    summary += f", history of {result.history_pairs} pair(s)" if result.history_pairs else ""
    summary += f"; showing the best {len(result.ranked)}" if len(result.ranked) < result.total else ""
    print(summary, file=sys.stderr)
    if verbose:
        print(output.throughput_line(result.stats, "throughput"), file=sys.stderr)

    if result.ties():
        print(
            f"note: {result.ties()} image(s) tie with a neighbour (rank marked '='); tied images are ordered by path",
            file=sys.stderr,
        )

    rows = result.rows()
    if fmt.value == "json":
        from prefcli import envelope
        from prefcli.cli.rank_json import rank_document

        envelope.print_doc(
            rank_document(
                result,
                candidates=candidates,
                likes=likes,
                dislikes=dislikes,
                pairs=pairs,
                prompt=prompt,
                prompts=prompts,
                top=top,
                recursive=recursive,
                batch_size=batch_size,
            )
        )
    elif fmt.value in ("table", "markdown"):
        # Paths relative to the folder keep the table narrow; json/csv keep them whole. Scores get one
        # format with enough decimals to show what decides the order; a tie's rank is marked '='.
        shown = []
        for r in rows:
            shown.append(
                {
                    "rank": f"{r['rank']}{'=' if r['tie'] else ''}",
                    "score": result.format_score(r["score"]),
                    "file": os.path.relpath(r["path"], candidates),
                    "path": r["path"],
                    "image_id": r["image_id"],
                    "prompt": r["prompt"],
                }
            )
        columns = ["rank", "score", "file"] + (["prompt"] if any(r["prompt"] for r in rows) else [])
        if fmt.value == "markdown":
            columns = ["rank", "score", "path", "image_id", "prompt"]
        wins = " (wins)" if result.kind == "pairwise" else ""
        output.emit(
            shown, fmt.value, columns=columns, title=f"{result.scorer}{wins} · weights {result.weights_id or '?'}"
        )
    else:
        extra = list(
            dict.fromkeys(k for r in rows for k in r if k not in ("rank", "score", "tie", "path", "image_id", "prompt"))
        )
        output.emit(rows, fmt.value, columns=["rank", "score", "tie", "path", "image_id", "prompt"] + extra)
    if result.sheet:
        print(f"wrote contact sheet {result.sheet}", file=sys.stderr)
