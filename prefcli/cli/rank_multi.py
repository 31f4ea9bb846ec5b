"""`prefcli rank DIR --scorer a --scorer b`: the several-scorer branch of rank (prefcli/cli/rank.py), printed."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def rank_several(
    chosen: Sequence[tuple[str, float]],
    method: str,
    default_weights: str | None,
    named_weights: dict[str, str],
    option: list[str] | None,
    *,
    candidates: Path,
    fmt: str,
    show_progress: bool,
    top: int | None,
    sheet: Path | None,
    sheet_options: dict[str, Any],
    **common: Any,
) -> None:
    from prefcli import output
    from prefcli.cli.options import scorer_options
    from prefcli.combine import check_method
    from prefcli.multirank import rank_folder_multi
    from prefcli.plugins import scoped_options
    from prefcli.progress import bars_by_name

    check_method(method)
    names = [n for n, _ in chosen]
    opts = scoped_options(
        scorer_options(option), names, among="the ranking's scorers"
    )  # -o SCORER.KEY VALUE, or a bare KEY for every scorer that has it
    weights = {n: named_weights.get(n, default_weights) for n in names}

    with bars_by_name(show_progress, lambda name: f"scoring with {name}") as progress:
        result = rank_folder_multi(
            candidates,
            scorers=chosen,
            method=method,
            weights=weights,
            scorer_options=opts,
            top=top,
            sheet=sheet,
            sheet_options=sheet_options,
            progress=progress,
            **common,
        )

    for path, reason in result.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    ids = ", ".join(f"{n} (weights {r.weights_id})" if r.weights_id else n for n, r in result.results.items())
    summary = f"ranked {result.total} image(s) in {candidates} by {method} of {ids}"
    summary += f", history of {result.history_pairs} pair(s)" if result.history_pairs else ""
    summary += f"; showing the best {len(result.ranked)}" if len(result.ranked) < result.total else ""
    print(summary, file=sys.stderr)
    if result.ties():
        print(f"note: {result.ties()} image(s) tie with a neighbour in the combination (rank marked '='); tied images are ordered by path",
              file=sys.stderr)  # fmt: skip

    if fmt == "json":
        from prefcli import envelope
        from prefcli.multirank import multirank_document

        inputs = {
            k: common.get(k) for k in ("likes", "dislikes", "pairs", "prompt", "prompts", "recursive", "batch_size")
        }
        envelope.print_doc(
            multirank_document(
                result,
                candidates=candidates,
                top=top,
                scorer_options=opts,
                dtype=common.get("dtype"),
                device=common.get("device"),
                **inputs,
            )
        )
        return
    arrow = "↓" if method == "mean-rank" else "↑"
    if fmt == "csv":
        rows = []
        for r in result.rows():
            row = {k: r[k] for k in ("rank", "score", "tie", "path", "image_id", "prompt")}
            row.update({n: r["scores"][n] for n in names})
            row.update({f"{n} rank": r["ranks"][n] for n in names})
            rows.append(row)
        output.emit(
            rows,
            "csv",
            columns=["rank", "score", "tie", "path", "image_id", "prompt"] + names + [f"{n} rank" for n in names],
        )
    else:
        shown = []
        for r in result.ranked:
            row = {
                "rank": f"{r.rank}{'=' if r.tie else ''}",
                method: result.format_combined(r.score),
                "file": os.path.relpath(r.path, candidates),
                "path": r.path,
                "prompt": r.prompt,
            }
            row.update({n: result.format_score(n, r.scores[n]) for n in names})
            shown.append(row)
        where = "path" if fmt == "markdown" else "file"
        columns = ["rank", method] + names + [where] + (["prompt"] if any(r.prompt for r in result.ranked) else [])
        weighted = any(w != 1.0 for w in result.weights.values())
        of = ", ".join(f"{n}×{result.weights[n]:g}" if weighted else n for n in names)
        output.emit(shown, fmt, columns=columns, headers={method: f"{method} {arrow}"}, title=f"{method} of {of}")
    if result.sheet:
        print(f"wrote contact sheet {result.sheet}", file=sys.stderr)
