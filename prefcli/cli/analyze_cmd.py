"""`prefcli analyze`: what a trained preference model learned (tokens, attention, clusters, history curves)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from prefcli.cli import app
from prefcli.cli.options import DeviceOpt, Format, FormatOpt, SeedOpt

analyze_app = typer.Typer(
    name="analyze",
    help="Look inside a trained preference model: tokens → words, attention, user clusters, N_ref curves.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(analyze_app, name="analyze")

CkptArg = Annotated[
    str,
    typer.Argument(
        help="A model folder, training run or checkpoint folder, or a shipped tiny model's name (e.g. tiny-opposed-tokens).",
        show_default=False,
    ),
]
DatasetArg = Annotated[
    Path, typer.Argument(help="A prefcli dataset directory (holds dataset.json).", show_default=False)
]
AnalysisOutOpt = Annotated[
    Path,
    typer.Option(
        "--out", help="Directory for the figure (PNG/PDF/SVG), the tables (.md/.tex/.csv) and the JSON document."
    ),
]
ProgressOpt = Annotated[
    bool,
    typer.Option(
        "--progress/--no-progress", help="Show progress on stderr (plain lines when stderr is not a terminal)."
    ),
]


def _print_table(table, fmt: Format, doc: dict) -> None:
    if fmt is Format.json:
        from prefcli import envelope

        envelope.print_doc(doc)
    else:
        table.print(fmt.value)


def _write_tables(
    out: Path, stem: str, table, csv_rows: list[dict] | None = None, csv_columns: list[str] | None = None
) -> list[Path]:
    from prefcli import atomic
    from prefcli.output import to_csv

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext, text in (
        ("md", table.to_markdown()),
        ("tex", table.to_latex()),
        ("csv", to_csv(csv_rows, csv_columns) if csv_rows is not None else table.to_csv()),
    ):
        p = out / f"{stem}.{ext}"
        atomic.write_text(p, text)
        paths.append(p)
    return paths


def _done(paths: list[Path], out: Path) -> None:
    print(f"wrote {len(paths)} files to {out}: {', '.join(sorted(p.name for p in paths))}", file=sys.stderr)


@analyze_app.command("tokens")
def tokens_command(
    ckpt: CkptArg,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="Nearest vocabulary tokens per preference token.")] = 5,
    include_special: Annotated[
        bool,
        typer.Option(
            "--include-special", help="Also consider special tokens (<image>, padding, ...), which are not words."
        ),
    ] = False,
    out: AnalysisOutOpt = Path("analysis/tokens"),
    device: DeviceOpt = "cpu",
    fmt: FormatOpt = Format.table,
    progress: ProgressOpt = True,
) -> None:
    """The nearest vocabulary tokens of each preference token, by Euclidean distance (the paper's table 7).

    Each learned preference token is compared with every row of the language
    model's input-embedding matrix; the table lists its K nearest tokens with
    their distances, one row per preference token. Tokens not in Latin script
    are shown as they are and marked with their script in brackets (cjk,
    cyrillic, byte for byte-fallback pieces, ...). The note gives a yardstick: how far
    a vocabulary token typically is from its own nearest neighbour.

    Writes tokens.json (the analyze JSON shape), tokens.md, tokens.tex,
    tokens.csv (one row per preference token and neighbour) and
    tokens.{png,pdf,svg} (the distances on one axis, beside the vocabulary's
    own nearest-neighbour scale) to --out.

    Examples:

        prefcli analyze tokens tiny-opposed-tokens

        prefcli analyze tokens runs/stage2 --k 10 --out paper/table7 --format json
    """
    from prefcli.analyze import report, tokens
    from prefcli.progress import progress_bar

    vlm, model = report.load_model(ckpt, device=device)
    with progress_bar(progress) as bar:
        task = bar.add_task("finding nearest tokens", total=vlm.n_pref_tokens or 0)
        res = tokens.nearest_tokens(vlm, k=k, include_special=include_special, progress=lambda n: bar.advance(task, n))
    opts = {"k": k, "include_special": include_special, "device": device}
    doc = report.envelope("analyze tokens", res, model=model, options=opts)
    table = tokens.tokens_table(res)
    long = tokens.long_rows(res)
    paths = _write_tables(out, "tokens", table, long, ["token", "rank", "id", "piece", "text", "script", "distance"])
    paths += tokens.tokens_figure(res, out / "tokens")
    paths.append(report.write(out / "tokens.json", doc))
    _print_table(table, fmt, doc)
    _done(paths, out)


@analyze_app.command("history")
def history_command(
    results: Annotated[
        Path, typer.Argument(help="The results.json written by `prefcli bench --out DIR`.", show_default=False)
    ],
    out: AnalysisOutOpt = Path("analysis/history"),
    fmt: FormatOpt = Format.table,
) -> None:
    """Accuracy against N_ref and the seen/unseen gap per N_ref (the paper's figures 5 and 6).

    Reads the run records of a finished `prefcli bench` (nothing is scored
    again) and draws top-1 against N_ref per history-conditioned scorer, with
    history-free scorers and chance as reference lines, and the seen and
    unseen users' top-1 with their gap |Δ| per N_ref. Error bars are the
    bootstrap standard errors of the bench. For more than one point per
    curve, run the bench with several N_ref values (`--n-ref 1,2,4,8`, the
    default for datasets that materialized them).

    Writes nref_top1.{png,pdf,svg}, seen_unseen_gap.{png,pdf,svg},
    history.{md,tex,csv} and history.json to --out.

    Examples:

        prefcli analyze history bench-results/results.json

        prefcli analyze history results/results.json --out paper/figures --format csv
    """
    from prefcli.analyze import history, report

    res, figs, notes = history.analyze_history(results, out)
    table = history.history_table(res["rows"])
    doc = report.envelope(
        "analyze history",
        res,
        scorer=None,
        options={"results": str(results)},
        model={"weights": None, "revision": None},
    )
    paths = _write_tables(out, "history", table) + figs
    paths.append(report.write(out / "history.json", doc))
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    _print_table(table, fmt, doc)
    _done(paths, out)


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


SplitOpt = Annotated[str, typer.Option("--split", help="Which split's users: test or val.")]
NRefOpt = Annotated[
    int | None, typer.Option("--n-ref", min=1, help="History pairs per user (default: the dataset's, usually 8).")
]
TargetOpt = Annotated[
    str | None,
    typer.Option(
        "--target",
        help="The fixed target: an image file or a dataset image id (default: the first candidate of the split's first task).",
    ),
]


@analyze_app.command("attention")
def attention_command(
    ckpt: CkptArg,
    dataset: DatasetArg,
    users: Annotated[
        str | None, typer.Option("--users", help="Comma-separated user ids (default: the split's first two users).")
    ] = None,
    target: TargetOpt = None,
    layer: Annotated[int, typer.Option("--layer", help="Language-model layer (0 = first, -1 = last).")] = -1,
    head: Annotated[
        int | None, typer.Option("--head", min=0, help="One attention head (default: the mean of all heads).")
    ] = None,
    orders: Annotated[int, typer.Option("--orders", min=1, help="Random orders of each user's history.")] = 5,
    split: SplitOpt = "test",
    n_ref: NRefOpt = None,
    out: AnalysisOutOpt = Path("analysis/attention"),
    device: DeviceOpt = "cpu",
    seed: SeedOpt = 0,
    fmt: FormatOpt = Format.table,
    progress: ProgressOpt = True,
) -> None:
    """Attention between a target image's tokens and the preference tokens, per user (the paper's figure 3).

    Each user's history (their first task's, at --n-ref) is put in --orders
    random orders (pairs shuffled and each pair's two images, as in
    training, seeded by --seed); the same target follows every time. From
    --layer, each target image token's attention row is kept: over the whole
    sequence it sums to 1 (causal softmax); the part on the preference tokens
    is drawn as one heatmap per user on a shared colour scale. With a
    single-token target (the tiny models) the heatmap's rows are the orders
    and their mean, so one sees whether the pattern survives reordering.

    Writes attention.{png,pdf,svg}, attention.npz (pref: users × orders ×
    target tokens × L_p; mass; row_sums), attention.json (the same as nested
    lists, in the analyze JSON shape) and attention.{md,tex,csv} (per user:
    attention mass on the preference tokens ± its spread over orders, the
    most attended token) to --out.

    Examples:

        prefcli analyze attention tiny-opposed-tokens data/synthetic --users 3,7

        prefcli analyze attention runs/stage2 data/pickapic --users U1,U2 --target cat.png --layer 20 --head 3 --orders 5
    """
    import numpy as np

    from prefcli import atomic
    from prefcli.analyze import attention, inputs, report
    from prefcli.harness import source
    from prefcli.progress import progress_bar

    ds = source.open_dataset(dataset)
    n_ref = n_ref or source.default_n_ref(ds)
    picked, skipped = inputs.user_inputs(ds, split, n_ref, _csv(users) or None, None if users else 2)
    tgt = inputs.fixed_target(ds, target, split, n_ref)
    vlm, model = report.load_model(ckpt, device=device, attn_implementation="eager")
    with progress_bar(progress) as bar:
        task = bar.add_task("reading attention", total=len(picked) * orders)
        res = attention.user_attention(
            vlm, picked, tgt, orders=orders, layer=layer, head=head, seed=seed, progress=lambda n: bar.advance(task, n)
        )
    rows = attention.summary_rows(picked, res)
    table = attention.attention_table(rows, res)
    out.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(out / "attention.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                pref=res["pref"],
                mass=res["mass"],
                row_sums=res["row_sums"],
                users=np.asarray([u.user_id for u in picked]),
            )
    results = {
        "users": [u.user_id for u in picked],
        "target": tgt.source,
        "layer": res["layer"],
        "head": res["head"],
        "n_layers": res["n_layers"],
        "n_heads": res["n_heads"],
        "orders": orders,
        "n_ref": n_ref,
        "shape": {"pref": list(res["pref"].shape), "axes": ["user", "order", "target_token", "pref_token"]},
        "pref": res["pref"].tolist(),
        "mass": res["mass"].tolist(),
        "row_sums": res["row_sums"].tolist(),
        "history_labels": res["labels"],
        "summary": rows,
    }
    opts = {
        "users": [u.user_id for u in picked],
        "target": target,
        "layer": layer,
        "head": head,
        "orders": orders,
        "split": split,
        "n_ref": n_ref,
        "seed": seed,
        "device": device,
        "dataset": str(dataset),
    }
    doc = report.envelope("analyze attention", results, model=model, options=opts, skipped=skipped)
    paths = _write_tables(out, "attention", table) + attention.attention_figure(picked, res, out / "attention")
    paths += [out / "attention.npz", report.write(out / "attention.json", doc)]
    for s in skipped:
        print(f"skipped {s['item']}: {s['reason']}", file=sys.stderr)
    _print_table(table, fmt, doc)
    _done(paths, out)


@analyze_app.command("clusters")
def clusters_command(
    ckpt: CkptArg,
    dataset: DatasetArg,
    n_users: Annotated[
        int | None, typer.Option("--users", min=3, help="Cluster the split's first N users (default: all of them).")
    ] = None,
    k: Annotated[
        int | None,
        typer.Option(
            "--k", min=2, help="Clusters in the figure (default: the synthetic world's number of taste groups, else 2)."
        ),
    ] = None,
    max_k: Annotated[int, typer.Option("--max-k", min=2, help="The table scores every K from 2 to this.")] = 6,
    target: TargetOpt = None,
    world: Annotated[
        Path | None,
        typer.Option(
            "--world",
            help="The synthetic world of the dataset, for its true taste groups (default: the dataset's recorded source, when it is one).",
        ),
    ] = None,
    split: SplitOpt = "test",
    n_ref: NRefOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Users per forward pass.")] = 16,
    out: AnalysisOutOpt = Path("analysis/clusters"),
    device: DeviceOpt = "cpu",
    seed: SeedOpt = 0,
    fmt: FormatOpt = Format.table,
    progress: ProgressOpt = True,
) -> None:
    """Cluster users by the model's final-token embedding of one fixed target (the seed paper's table 5).

    Every user's history is followed by the same target; the last layer's
    hidden state at the final token (where the "+"/"-" logits are read) is
    that user's embedding. K-means groups them (scikit-learn, n_init 10,
    --seed); the table gives the silhouette ↑ and Davies–Bouldin ↓ scores
    for every K from 2 to --max-k. On a synthetic world the true taste
    groups are known, and the adjusted Rand index (ARI) says how well the
    clusters recover them. The figure is a 2-D PCA of the embeddings,
    coloured and marked by cluster and, on a synthetic world, by true group.

    Writes clusters.{png,pdf,svg}, clusters.{md,tex,csv}, clusters.json (the
    analyze JSON shape; per user: cluster, true group, 2-D coordinates) and
    embeddings.npy to --out.

    Examples:

        prefcli analyze clusters tiny-opposed-tokens data/synthetic

        prefcli analyze clusters runs/stage2 data/pickapic --users 70 --k 4 --device cuda
    """
    import numpy as np

    from prefcli import atomic
    from prefcli.analyze import clusters, inputs, report
    from prefcli.harness import source
    from prefcli.progress import progress_bar

    ds = source.open_dataset(dataset)
    n_ref = n_ref or source.default_n_ref(ds)
    picked, skipped = inputs.user_inputs(ds, split, n_ref, None, n_users)
    if len(picked) < 3:
        from prefcli.errors import DataError

        raise DataError(f"{dataset}: only {len(picked)} {split} users; clustering needs at least 3")
    tgt = inputs.fixed_target(ds, target, split, n_ref)
    world_dir = inputs.world_of(ds, world)
    truth = None
    if world_dir is not None:
        from prefcli.data.synthetic import load_truth

        t = load_truth(world_dir)
        truth = []
        for u in picked:
            g = t.user_group.get(int(u.user_id)) if str(u.user_id).isdigit() else None
            if g is None:
                skipped.append({"item": f"user {u.user_id}", "reason": "not a user of the synthetic world"})
            truth.append(g)
        if any(g is None for g in truth):
            truth = None
    k = k or (len(set(truth)) if truth is not None and len(set(truth)) >= 2 else 2)
    vlm, model = report.load_model(ckpt, device=device)
    with progress_bar(progress) as bar:
        task = bar.add_task("embedding candidates", total=len(picked))
        X = clusters.final_token_embeddings(vlm, picked, tgt, batch_size, progress=lambda n: bar.advance(task, n))
    ks = sorted(set(range(2, min(max_k, len(picked) - 1) + 1)) | {k})
    sweep = clusters.k_sweep(X, ks, seed, truth)
    main = clusters.cluster_scores(X, k, seed)
    ari = clusters.agreement(main["labels"], truth) if truth is not None else None
    Y, var = clusters.projection(X, seed)
    table = clusters.clusters_table(sweep, truth is not None)
    out.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(out / "embeddings.npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, X)
    per_user = [
        {
            "user": u.user_id,
            "seen": u.seen,
            "cluster": int(c),
            "group": None if truth is None else int(truth[i]),
            "x": float(Y[i, 0]),
            "y": float(Y[i, 1]),
        }
        for i, (u, c) in enumerate(zip(picked, main["labels"]))
    ]
    results = {
        "k": k,
        "silhouette": main["silhouette"],
        "davies_bouldin": main["davies_bouldin"],
        "ari": ari,
        "n_users": len(picked),
        "dim": int(X.shape[1]),
        "target": tgt.source,
        "world": None if world_dir is None else str(world_dir),
        "sweep": sweep,
        "projection": {"method": "pca", "explained_variance": var},
        "users": per_user,
    }
    opts = {
        "users": n_users,
        "k": k,
        "max_k": max_k,
        "target": target,
        "split": split,
        "n_ref": n_ref,
        "seed": seed,
        "device": device,
        "dataset": str(dataset),
        "world": None if world is None else str(world),
    }
    doc = report.envelope("analyze clusters", results, model=model, options=opts, skipped=skipped)
    paths = _write_tables(out, "clusters", table)
    paths += clusters.clusters_figure(Y, var, main["labels"], truth, ari, out / "clusters")
    paths += [out / "embeddings.npy", report.write(out / "clusters.json", doc)]
    for s in skipped:
        print(f"skipped {s['item']}: {s['reason']}", file=sys.stderr)
    if ari is not None:
        print(f"agreement with the true taste groups at K={k}: adjusted Rand index {ari:.3f}", file=sys.stderr)
    _print_table(table, fmt, doc)
    _done(paths, out)
