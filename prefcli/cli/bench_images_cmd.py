"""`prefcli bench images DIR`: score an existing folder of generated images on a benchmark, a table per scorer.

Like `bench generate`, a Typer app of its own that `bench`'s command class hands `bench images ...` to.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from prefcli.cli.eval_cmd import BatchOpt, CacheDirOpt, NoCacheOpt
from prefcli.cli.generate_cmd import WeightsListOpt
from prefcli.cli.options import (
    BenchOptionsOpt,
    DeviceOpt,
    DType,
    DTypeOpt,
    Format,
    FormatOpt,
    OfflineOpt,
    OptionPairsCommand,
    OutputOverwriteOpt,
    ProgressOpt,
    comma_list,
    scorer_options,
)
from prefcli.cli.table_choice import TableOpt

bench_images_app = typer.Typer(
    add_completion=False, pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]}
)


@bench_images_app.command("images", cls=OptionPairsCommand)
def bench_images_command(
    folder: Annotated[
        Path,
        typer.Argument(
            help="The generated images: DIR/<style>/<index:05d>.jpg (HPSv2), DIR/<id>_<k>.png (ImageReward), or the files a {file: prompt} file names.",
            show_default=False,
        ),
    ],
    prompts: Annotated[
        str,
        typer.Option(
            "--prompts",
            help="hpsv2 (the benchmark's prompts from the hub), a folder of HPSv2 <style>.json, imagereward (its benchmark-prompts.json from GitHub) or that file, or a {file: prompt} JSON / file,prompt CSV naming files inside DIR.",
        ),
    ],
    scorers: Annotated[
        str,
        typer.Option(
            "--scorers", "-s", help="Comma-separated scorers, a table each, e.g. hpsv2,pickscore,imagereward."
        ),
    ],
    history: Annotated[
        Path | None,
        typer.Option(
            "--history",
            help="A person's folder holding liked/ and disliked/: personalized scorers (clip-probe, preftoken, ...) then join the table.",
        ),
    ] = None,
    styles: Annotated[
        str | None,
        typer.Option(
            "--styles",
            help="HPSv2: comma-separated subset of anime, concept-art, paintings, photo (default: the style folders in DIR).",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N prompts (of each style).")
    ] = None,
    weights: WeightsListOpt = None,
    option: BenchOptionsOpt = None,
    device: DeviceOpt = "auto",
    dtype: DTypeOpt = DType.auto,
    offline: OfflineOpt = False,
    batch_size: BatchOpt = 16,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Also write every table as <scorer>.md/.csv/.tex, tables.md/.tex and results.json here."
        ),
    ] = None,
    overwrite: OutputOverwriteOpt = False,
    fmt: FormatOpt = Format.table,
    table: TableOpt = None,
    show_progress: ProgressOpt = True,
) -> None:
    """Score a folder of generated images on a benchmark: one table per scorer, ± standard error.

    The scoring half of `bench generate`, for images made by any generator.
    HPSv2's layout (DIR/<style>/<index:05d>.jpg, the index into <style>.json)
    is scored as hpsv2's evaluate does: HPSv2 as 100 · cos, a style's score
    the mean of its 80-image chunk means, the average over all images; a
    prompt without its image is left out and counted. ImageReward's layout
    (DIR/<id>_<k>.png) scores the mean of each prompt's mean. Any other set: a
    {file: prompt} file naming images inside DIR. Scores are cached, so an
    interrupted run resumes and a rerun recomputes nothing; an image that
    cannot be read is skipped and reported.

    Examples:

        prefcli bench images bench-generate/guided --prompts hpsv2 --scorers hpsv2,pickscore,imagereward --device cuda

        prefcli bench images ./my-images --prompts prompts.json --scorers clip,aesthetic,clip-probe --history ./alice --weights tiny
    """
    from prefcli.cli.eval_cmd import set_offline
    from prefcli.generate.rewards import parse_scorer_options, parse_weights
    from prefcli.harness import bench_images as B

    if offline:
        set_offline()
    names = comma_list(scorers)
    if out is not None:
        from prefcli.atomic import check_output_dir

        check_output_dir(out, overwrite=overwrite)  # refused before any image is scored
    cfg = B.BenchImagesConfig(
        folder=str(folder), prompts=prompts, scorers=names, styles=comma_list(styles), limit=limit,
        history=None if history is None else str(history), weights=parse_weights(weights or []),
        options=parse_scorer_options(list(scorer_options(option).items()), names), device=device,
        dtype=None if dtype is DType.auto else dtype.value, batch_size=batch_size,
        cache_dir=None if cache_dir is None else str(cache_dir), use_cache=not no_cache,
    )  # fmt: skip

    from prefcli.progress import bars_by_name

    with bars_by_name(show_progress, lambda name: f"scoring with {name}") as progress:
        data = B.run(cfg, progress=progress)
    for path, reason in data["skipped"]:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    layout = data["layout"]
    for group, n in layout.missing.items():
        where = f"style {group}" if layout.kind == "hpsv2" else str(folder)
        print(
            f"note: {n} prompt(s) of {where} have no image in {folder}; left out, as the benchmark's own code does",
            file=sys.stderr,
        )
    print(f"scored {len(layout.items)} image(s) in {folder} ({layout.kind} layout, prompts {layout.source}) with {', '.join(data['done'].scores)}"
          + (f", history of {data['history_pairs']} pair(s)" if data["history_pairs"] else ""), file=sys.stderr)  # fmt: skip
    if out is not None:
        written = B.write_outputs(data, out, overwrite=overwrite)
        print(f"wrote {len(written)} files to {out}", file=sys.stderr)
    if fmt is Format.json:
        from prefcli import envelope

        envelope.print_doc(B.document(data))
        return
    from prefcli.cli.table_choice import print_tables

    tabs = B.tables(data)
    print_tables(
        [(t.name, t.print) for t in tabs], fmt.value, table, files=f"{out}/<table>.csv" if out is not None else None
    )
