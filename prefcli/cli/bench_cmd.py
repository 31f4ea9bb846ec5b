"""`prefcli bench`: several scorers on the same tasks, written as the paper's tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefcli.cli import app
from prefcli.cli.eval_cmd import (
    BatchOpt,
    BootOpt,
    CacheDirOpt,
    DatasetArg,
    LimitOpt,
    NoCacheOpt,
    ProgressOpt,
    SplitOpt,
    set_offline,
)
from prefcli.cli.options import (
    IMAGE_CACHE_MB,
    BenchOptionsOpt,
    DeviceOpt,
    DType,
    DTypeOpt,
    Format,
    FormatOpt,
    ImageCacheMbOpt,
    OfflineOpt,
    OptionPairsCommand,
    SeedOpt,
    VerboseOpt,
    WorkersOpt,
    scorer_options,
    workers_count,
)
from prefcli.cli.table_choice import TableOpt, print_tables


def _csv_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _bench_command_class():
    """`bench DATASET ...` as before (with `-o` pairs); `bench generate ...` goes to prefcli.cli.bench_generate_cmd,
    `bench images ...` to prefcli.cli.bench_images_cmd."""

    class BenchCommand(OptionPairsCommand):  # -o SCORER.KEY VALUE takes two values
        def parse_args(self, ctx, args):  # noqa: ANN001 - Click's signature
            if args and args[0] == "generate":
                from prefcli.cli.bench_generate_cmd import bench_generate_app

                cmd = typer.main.get_command(bench_generate_app)
                cmd.main(args=list(args[1:]), prog_name=f"{ctx.command_path} generate", standalone_mode=False)
                ctx.exit(0)
            if args and args[0] == "images":
                from prefcli.cli.bench_images_cmd import bench_images_app

                cmd = typer.main.get_command(bench_images_app)
                cmd.main(args=list(args[1:]), prog_name=f"{ctx.command_path} images", standalone_mode=False)
                ctx.exit(0)
            return super().parse_args(ctx, args)

    return BenchCommand


@app.command("bench", cls=_bench_command_class())
def bench_command(
    dataset: DatasetArg,
    scorers: Annotated[
        str, typer.Option("--scorers", "-s", help="Comma-separated scorer names, e.g. clip,aesthetic,clip-probe.")
    ],
    weights: Annotated[
        list[str] | None,
        typer.Option(
            "--weights",
            "-w",
            help="Weights for every scorer ('tiny', a path, hf-hub:...) or NAME=SPEC for one; repeatable. A probe inherits its base scorer's.",
        ),
    ] = None,
    option: BenchOptionsOpt = None,
    protocols: Annotated[
        str | None,
        typer.Option(
            "--protocols", help="Comma-separated: 1v1, 1v3, rating (default: every protocol the dataset has)."
        ),
    ] = None,
    n_ref: Annotated[
        str | None,
        typer.Option(
            "--n-ref",
            help="Comma-separated N_ref values for history-conditioned scorers (default: every N_ref the dataset materialized, e.g. 1,2,4,8).",
        ),
    ] = None,
    split: SplitOpt = "test",
    out: Annotated[
        Path, typer.Option("--out", help="Directory for the tables (.md/.csv/.json), the N_ref plot and results.json.")
    ] = Path("bench-results"),
    batch_size: BatchOpt = 32,
    device: DeviceOpt = "auto",
    dtype: DTypeOpt = DType.auto,
    offline: OfflineOpt = False,
    fmt: FormatOpt = Format.table,
    table: TableOpt = None,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    seed: SeedOpt = 0,
    bootstrap: BootOpt = 1000,
    limit: LimitOpt = None,
    progress: ProgressOpt = True,
    log_samples: Annotated[
        bool,
        typer.Option(
            "--log-samples",
            help="Also write every task's scores, one JSON line per task, to OUT/samples/<scorer>_<protocol>[_nref<N>].jsonl.",
        ),
    ] = False,
    workers: WorkersOpt = None,
    image_cache_mb: ImageCacheMbOpt = IMAGE_CACHE_MB,
    verbose: VerboseOpt = False,
) -> None:
    """Benchmark several scorers on the same tasks and write the paper's tables.

    Table 1: 1-vs-1 top-1 accuracy per scorer with its N_ref. Table 2: 1-vs-3
    top-1/2/3 with a Random row (25/50/75). Table 3: seen vs unseen users'
    top-1 and the gap |Δ|. History-conditioned scorers run at every --n-ref
    (shown in the tables at the largest, and in the N_ref sweep and plot);
    history-free scorers run once, with N_ref "–". Accuracies carry ± a
    bootstrap standard error over users; ties count as misses.

    The tables print here and are written to --out as Markdown, LaTeX
    (booktabs), CSV and JSON (accuracies as fractions), with the nref_top1 and
    seen_unseen_gap figures (PNG, PDF, SVG) and results.json (provenance:
    config, seeds, weights ids, package versions, git commit, dataset). Scores are cached on disk,
    so a rerun (or a resumed, interrupted run) recomputes nothing it has.

    `prefcli bench generate` is the generation benchmark (the paper's table 4,
    HPSv2 of personalized generation): see `prefcli bench generate --help`.
    `prefcli bench images DIR` scores a folder of images made by any
    generator on a benchmark: see `prefcli bench images --help`.

    Examples:

        prefcli bench data/synthetic --scorers clip,aesthetic,clip-probe --weights tiny

        prefcli bench data/pickapic --scorers pickscore,hpsv2,imagereward,pickscore-probe --device cuda --out results/

        prefcli bench data/pickapic --scorers clip,preftoken --weights preftoken=runs/stage2/final --n-ref 8

        prefcli bench data/pickapic --scorers hpsv2,hpsv2-probe -o hpsv2.version 2.0 -o hpsv2-probe.C 0.5
    """
    import sys

    from prefcli.errors import ConfigError
    from prefcli.harness import bench, tables
    from prefcli.harness.runner import is_main_process

    if offline:
        set_offline()
    try:
        n_refs = [int(x) for x in _csv_list(n_ref)] if n_ref else []
    except ValueError:
        raise ConfigError(f"--n-ref: expected comma-separated integers, got {n_ref!r}") from None
    cfg = bench.BenchConfig(
        dataset=str(dataset), scorers=_csv_list(scorers), weights=list(weights or []), protocols=_csv_list(protocols) if protocols else [], n_refs=n_refs,
        split=split, batch_size=batch_size, device=device, dtype=None if dtype is DType.auto else dtype.value,
        options=bench.scoped_options(scorer_options(option), _csv_list(scorers)),
        seed=seed, n_boot=bootstrap, cache_dir=None if cache_dir is None else str(cache_dir), use_cache=not no_cache, limit=limit,
        workers=workers_count(workers), image_cache_mb=image_cache_mb,
    )  # fmt: skip

    def log(msg: str) -> None:
        if progress:
            print(msg, file=sys.stderr)

    on_records = None
    if log_samples and is_main_process():
        from prefcli.harness.samples import samples_name, write_samples

        def on_records(run: dict, records: list) -> None:  # written as each run ends: an interrupted bench keeps them
            write_samples(
                out / "samples" / samples_name(run), records, run.get("higher_is_better", True), run["scorer"]
            )

    runs, prov = bench.run_bench(cfg, progress=progress, log=log, on_records=on_records)
    if not is_main_process():
        return
    if verbose:
        from prefcli.output import throughput_line

        for run in runs:
            label = f"{run['scorer']} {run['protocol']}" + (f" N_ref {run['n_ref']}" if run.get("uses_history") else "")
            print(throughput_line(run["stats"], label), file=sys.stderr)
    written = bench.write_outputs(runs, prov, out)
    tabs = tables.bench_tables(runs, references=prov.get("references"))
    if fmt is Format.json:
        from prefcli import envelope

        # The one JSON shape of every command (prefcli/envelope.py, docs/schemas/bench.schema.json).
        envelope.print_doc(envelope.bench_document(runs, tabs, prov))
    else:
        print_tables([(t.name, t.print) for t in tabs], fmt.value, table, files=f"{out}/<table>.csv")
        if fmt is Format.markdown:
            sys.stdout.write("\n")
    print(f"wrote {len(written)} files to {out}", file=sys.stderr)
