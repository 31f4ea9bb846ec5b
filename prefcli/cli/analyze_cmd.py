"""`prefcli analyze`: what a trained preference model learned (tokens, attention, clusters, history curves)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

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

CkptArg = Annotated[str, typer.Argument(help="A model folder, training run or checkpoint folder, or a shipped tiny model's name (e.g. tiny-opposed-tokens).", show_default=False)]
DatasetArg = Annotated[Path, typer.Argument(help="A prefcli dataset directory (holds dataset.json).", show_default=False)]
AnalysisOutOpt = Annotated[Path, typer.Option("--out", help="Directory for the figure (PNG/PDF/SVG), the tables (.md/.tex/.csv) and the JSON document.")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress on stderr (plain lines when stderr is not a terminal).")]


def _print_table(table, fmt: Format, doc: dict) -> None:
    if fmt is Format.json:
        from prefcli.output import to_json
        from prefcli.harness.results import clean_nan

        sys.stdout.write(to_json(clean_nan(doc)) + "\n")
    else:
        table.print(fmt.value)


def _write_tables(out: Path, stem: str, table, csv_rows: list[dict] | None = None, csv_columns: list[str] | None = None) -> list[Path]:
    from prefcli import atomic
    from prefcli.output import to_csv

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext, text in (("md", table.to_markdown()), ("tex", table.to_latex()),
                      ("csv", to_csv(csv_rows, csv_columns) if csv_rows is not None else table.to_csv())):
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
    include_special: Annotated[bool, typer.Option("--include-special", help="Also consider special tokens (<image>, padding, ...), which are not words.")] = False,
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

    Writes tokens.json (the analyze JSON shape), tokens.md, tokens.tex and
    tokens.csv (one row per preference token and neighbour) to --out.

    Examples:

        prefcli analyze tokens tiny-opposed-tokens

        prefcli analyze tokens runs/stage2 --k 10 --out paper/table7 --format json
    """
    from prefcli.analyze import report, tokens
    from prefcli.progress import progress_bar

    vlm, model = report.load_model(ckpt, device=device)
    with progress_bar(progress) as bar:
        task = bar.add_task("nearest tokens", total=vlm.n_pref_tokens or 0)
        res = tokens.nearest_tokens(vlm, k=k, include_special=include_special, progress=lambda n: bar.advance(task, n))
    opts = {"k": k, "include_special": include_special, "device": device}
    doc = report.envelope("analyze tokens", res, model=model, options=opts)
    table = tokens.tokens_table(res)
    long = tokens.long_rows(res)
    paths = _write_tables(out, "tokens", table, long, ["token", "rank", "id", "piece", "text", "script", "distance"])
    paths.append(report.write(out / "tokens.json", doc))
    _print_table(table, fmt, doc)
    _done(paths, out)


@analyze_app.command("history")
def history_command(
    results: Annotated[Path, typer.Argument(help="The results.json written by `prefcli bench --out DIR`.", show_default=False)],
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
    doc = report.envelope("analyze history", res, scorer=None, options={"results": str(results)},
                          model={"weights": None, "revision": None})
    paths = _write_tables(out, "history", table) + figs
    paths.append(report.write(out / "history.json", doc))
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    _print_table(table, fmt, doc)
    _done(paths, out)
