"""`prefcli eval`: one scorer, one protocol, one N_ref; top-k accuracy with standard errors."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from prefcli.cli import app
from prefcli.cli.options import (  # noqa: F401 - DType/DTypeOpt are re-exported for bench
    IMAGE_CACHE_MB,
    DeviceOpt,
    DType,
    DTypeOpt,
    Format,
    FormatOpt,
    ImageCacheMbOpt,
    OfflineOpt,
    OptionPairsCommand,
    ScorerOpt,
    ScorerOptionsOpt,
    SeedOpt,
    VerboseOpt,
    WeightsOpt,
    WorkersOpt,
    scorer_options,
    workers_count,
)
from prefcli.cli.table_choice import TableOpt


class Protocol(str, Enum):
    one_vs_one = "1v1"
    one_vs_three = "1v3"
    rating = "rating"


DatasetArg = Annotated[
    Path, typer.Argument(help="A prefcli dataset directory (holds dataset.json).", show_default=False)
]
SplitOpt = Annotated[str, typer.Option("--split", help="Which split's tasks: test or val.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Candidates per scorer call.")]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Score/embedding cache directory (default: $PREFCLI_CACHE/harness, else ~/.cache/prefcli/harness).",
    ),
]
NoCacheOpt = Annotated[
    bool,
    typer.Option("--no-cache", help="Neither read nor write the score cache (an interrupted run then starts over)."),
]
BootOpt = Annotated[
    int, typer.Option("--bootstrap", min=0, help="Bootstrap replicates for the standard errors (resampling users).")
]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N tasks (a quick smoke run).")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")]


def check_fit_blend(spec, split: str, protocol: str) -> None:
    """--fit-blend, before any work: a scorer with a population w to fit, validation users, ranked tasks."""
    from prefcli.errors import ConfigError

    if not hasattr(spec.load_class(), "write_population_fit"):
        raise ConfigError(f"--fit-blend: scorer {spec.name} has no population w to fit; use --scorer blend")
    if split != "val":
        raise ConfigError(
            f"--fit-blend fits on validation users, not {split!r} ones: add --split val (fitting on the "
            "users it is then measured on would leak them into the result)"
        )
    if protocol == "rating":
        raise ConfigError("--fit-blend needs ranked tasks (--protocol 1v1 or 1v3), not ratings")


def set_offline() -> None:
    """--offline: read by prefcli.weights (and huggingface_hub) when weights are resolved."""
    import os

    os.environ["PREFCLI_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"


def open_cache(cache_dir: Path | None, no_cache: bool):
    from prefcli.harness.cache import CacheDir

    return None if no_cache else CacheDir(cache_dir)


@app.command("eval", cls=OptionPairsCommand)
def eval_command(
    dataset: DatasetArg,
    scorer: ScorerOpt,
    weights: WeightsOpt = None,
    option: ScorerOptionsOpt = None,
    split: SplitOpt = "test",
    protocol: Annotated[
        Protocol,
        typer.Option(
            "--protocol",
            "-p",
            help="1v1 (liked vs disliked), 1v3 (one liked among four) or rating (predict each user's ratings).",
        ),
    ] = Protocol.one_vs_one,
    n_ref: Annotated[
        int | None,
        typer.Option(
            "--n-ref",
            min=1,
            help="History pairs per user (ignored by history-free scorers; default: the dataset's, usually 8).",
        ),
    ] = None,
    batch_size: BatchOpt = 32,
    device: DeviceOpt = "auto",
    dtype: DTypeOpt = DType.auto,
    offline: OfflineOpt = False,
    fmt: FormatOpt = Format.table,
    table: TableOpt = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Also write the result, its provenance and every task's scores to this JSON file."),
    ] = None,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    seed: SeedOpt = 0,
    bootstrap: BootOpt = 1000,
    limit: LimitOpt = None,
    progress: ProgressOpt = True,
    log_samples: Annotated[
        Path | None,
        typer.Option(
            "--log-samples",
            help="Write one JSON line per task (task id, user, candidates, scores, rank, hit) to this .jsonl file.",
        ),
    ] = None,
    no_world: Annotated[
        bool,
        typer.Option(
            "--no-world",
            help="On a synthetic world, skip the group-balanced accuracy, history swap and ground-truth references.",
        ),
    ] = False,
    fit_blend: Annotated[
        Path | None,
        typer.Option(
            "--fit-blend",
            help="With --scorer blend --split val: fit the population w on these validation users and write it to this JSON file (read back by -o population_weight FILE).",
        ),
    ] = None,
    workers: WorkersOpt = None,
    image_cache_mb: ImageCacheMbOpt = IMAGE_CACHE_MB,
    verbose: VerboseOpt = False,
) -> None:
    """Evaluate one scorer on a dataset's materialized tasks and report top-k accuracy.

    1v1 tasks report top-1; 1v3 tasks report top-1, top-2 and top-3, each for
    all test users, seen users (also in training) and unseen users. The liked
    image counts as a hit at top-k only if fewer than k other candidates score
    at least as well as it: a tie is a miss unless the liked image strictly
    wins. The ± is a bootstrap standard error over users (users are the
    independent unit; `--seed` fixes it).

    Scores are cached on disk per (scorer, weights, image, prompt, history),
    so a rerun or an interrupted run picks up where it stopped.

    On a dataset built from a synthetic world (`prefcli data synthetic`), a
    second table reports group-balanced top-1 (the mean of the taste groups'
    accuracies), the history swap (every task scored again with the history
    of a user from another group: a model that reads the history falls), the
    world's ground-truth references on the same tasks (user, group and
    population utility; the Bayes-optimal group from the history pairs; a
    logistic fit) and the share of the achievable gap the model closes,
    (model − population) / (Bayes from the history − population). Under
    `accelerate launch` the tasks are split across processes.

    Examples:

        prefcli eval data/pickapic --scorer pickscore

        prefcli eval data/synthetic --scorer clip-probe --weights tiny --protocol 1v3 --n-ref 4

        prefcli eval data/pickapic --scorer hpsv2 --device cuda --dtype bf16 --out results/hpsv2.json

        prefcli eval data/pickapic --scorer hpsv2 -o version 2.0 -o percent true

        prefcli eval data/synthetic --scorer clip-probe --weights tiny --log-samples samples.jsonl

        prefcli eval data/synthetic --scorer blend --weights tiny --split val --fit-blend population-w.json
    """
    from prefcli.harness import evaluate as ev
    from prefcli.harness import results, source, tables
    from prefcli.harness import world as world_mod
    from prefcli.harness.runner import ScorerHandle, is_main_process, process_device

    if offline:
        set_offline()
    from prefcli.atomic import check_output_files

    check_output_files(out=out, log_samples=log_samples, fit_blend=fit_blend)  # before the work, not after it
    # An unknown name, a bad -o and a --device this machine lacks fail before the dataset is read: resolved once, here.
    handle = ScorerHandle(scorer, weights, device=device, dtype=dtype.value, options=scorer_options(option))
    handle.device = process_device(handle.device)  # under `accelerate launch`, this process's own GPU
    if fit_blend is not None:
        check_fit_blend(handle.spec, split, protocol.value)
    ds = source.open_dataset(dataset)
    n_ref = n_ref or source.default_n_ref(ds)
    tasks = source.load_tasks(ds, split, protocol.value, n_ref, limit)
    cache = open_cache(cache_dir, no_cache)
    handle.cache = cache
    from prefcli import image_cache

    with image_cache.session(image_cache_mb):  # the world's history swap meets the same images again
        run, records = ev.evaluate(
            handle, tasks, cache=cache, batch_size=batch_size, n_boot=bootstrap, seed=seed, progress=progress,
            split=split, protocol=protocol.value, n_ref=n_ref, workers=workers_count(workers),
        )  # fmt: skip
        world_rep = None
        world_dir = world_mod.find_world(ds)
        if world_dir is not None and not no_world:
            world = world_mod.World(world_dir, ds.users("train") if hasattr(ds, "users") else None)
            if all(world.knows(r["user_id"]) for r in records):
                world_rep = world_mod.evaluate_on_world(
                    handle, tasks, records, world, cache=cache, batch_size=batch_size, progress=progress
                )
                run["world"] = world_rep
    if verbose and is_main_process():
        from prefcli.output import throughput_line

        print(throughput_line(run["stats"], f"throughput of {handle.name}"), file=sys.stderr)
    if handle.loaded and not world_mod.scorer_reads_history(handle):
        # A history-free model under a history scorer (a population checkpoint): it read no pairs.
        run["n_ref"] = None
        run["reads_history"] = False
        for r in records:
            r["n_ref"] = None
    identity = handle.identity  # read while the cache is open: what actually produced the scores
    if cache is not None:
        cache.close()
    if not is_main_process():
        return
    prov = results.provenance(
        command="eval",
        config={"dataset": str(dataset), "scorer": scorer, "weights": weights, "split": split, "protocol": protocol.value, "n_ref": n_ref,
                "batch_size": batch_size, "device": handle.device, "dtype": identity["dtype"], "requested_dtype": dtype.value,
                "options": handle.options.changed(), "cache_dir": None if cache is None else str(cache.root), "limit": limit,
                "workers": workers_count(workers), "image_cache_mb": image_cache_mb},
        seeds={"bootstrap": seed},
        scorers={handle.name: {"weights": handle.weights, "weights_id": identity["weights"], "identity": identity}},
        dataset=results.dataset_provenance(getattr(ds, "info", None), dataset),
    )  # fmt: skip
    if fit_blend is not None:
        fit = handle.scorer.write_population_fit(fit_blend, records, fitted_on={
            "dataset": str(dataset), "dataset_info": prov["dataset"], "split": split, "protocol": protocol.value, "n_ref": n_ref,
            "limit": limit}, provenance=prov)  # fmt: skip
        print(
            f"population w {fit['population_weight']:g} (top-1 {fit['top1']:.3f} on {fit['fitted_on']['users']} validation "
            f"users at N_ref {n_ref}) written to {fit_blend}; use it with -o population_weight {fit_blend}",
            file=sys.stderr,
        )
    # The one JSON shape of every command (prefcli/envelope.py, docs/schemas/eval.schema.json).
    from prefcli import envelope

    doc = envelope.envelope("eval", run, scorer=handle.name, weights=handle.weights, revision=handle.weights_id,
                            options=prov["config"], provenance=prov)  # fmt: skip
    if out is not None:
        envelope.write(out, {**doc, "results": {**run, "tasks": records}})
    if log_samples is not None:
        from prefcli.harness.samples import write_samples

        write_samples(log_samples, records, handle.spec.higher_is_better, handle.name)
    if fmt is Format.json:
        envelope.print_doc(doc)
    else:
        from prefcli.cli.table_choice import print_tables

        shown = [tables.eval_table(run)] + (
            [world_mod.world_table(world_rep, handle.name)] if world_rep is not None else []
        )
        print_tables([(t.name, t.print) for t in shown], fmt.value, table)
