"""Accuracy against N_ref and the seen/unseen gap per N_ref, from `prefcli bench` results (figures 5, 6).

Reads a bench ``results.json`` (its ``runs``), so the figures can be redrawn
from any finished bench without scoring anything again. History-free
scorers are kept as reference rows with ``n_ref`` null.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from prefcli.errors import DataError
from prefcli.harness.metrics import seen_unseen_gap


def read_runs(path: str | os.PathLike) -> tuple[list[dict], dict]:
    """(runs, provenance) of a bench results file; one clear error for anything else."""
    from prefcli import envelope

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: not found (give the results.json that `prefcli bench --out DIR` wrote)")
    doc = envelope.read(p, "bench")  # today's envelope, or the shape earlier versions wrote
    runs = (doc.get("results") or {}).get("runs")
    if not isinstance(runs, list) or not all(isinstance(r, dict) and "metrics" in r for r in runs):
        raise DataError(f"{p}: not a `prefcli bench` results file (no 'runs' list of run records)")
    for i, r in enumerate(runs):
        _check_run(p, i, r)
    prov = doc.get("provenance") or {}
    if not isinstance(prov, dict):
        raise DataError(f"{p}: 'provenance' must be a JSON object")
    return runs, prov


def _check_run(p: Path, i: int, run: dict) -> None:
    """The fields the figures read, of the types they need: a crafted file is one line, not a traceback."""
    from prefcli.jsonio import check_type

    where = f"{p}: runs[{i}]"
    check_type(run["metrics"], dict, where, "'metrics'")
    for key, kinds in (
        ("scorer", (str, type(None))),
        ("protocol", (str, type(None))),
        ("n_ref", (int, type(None))),
        ("n_tasks", (int, type(None))),
        ("uses_history", (bool, type(None))),
    ):
        check_type(run.get(key), kinds, where, f"'{key}'")
    for g in ("all", "seen", "unseen"):
        group = check_type(run["metrics"].get(g, {}), dict, where, f"metrics.{g}")
        top1 = check_type(group.get("top1") or {}, dict, where, f"metrics.{g}.top1")
        for k in ("value", "se"):
            v = check_type(top1.get(k), (int, float, type(None)), where, f"metrics.{g}.top1.{k}")
            if v is not None and math.isinf(v):
                raise DataError(f"{where}: metrics.{g}.top1.{k} is infinite")


def _frac(run: dict, group: str) -> tuple[float | None, float | None]:
    m = run.get("metrics", {}).get(group, {}).get("top1") or {}
    v, se = m.get("value"), m.get("se")
    clean = lambda x: None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)  # noqa: E731
    return clean(v), clean(se)


def curve_rows(runs: list[dict]) -> list[dict]:
    """One row per run: top-1 for all, seen and unseen users, the gap, each with its SE (fractions)."""
    rows = []
    for r in runs:
        row: dict[str, Any] = {
            "scorer": r.get("scorer"),
            "protocol": r.get("protocol"),
            "n_ref": r.get("n_ref") if r.get("uses_history") else None,
            "uses_history": bool(r.get("uses_history")),
            "n_tasks": r.get("n_tasks"),
        }
        for g, key in (("all", "top1"), ("seen", "seen"), ("unseen", "unseen")):
            row[key], row[f"{key}_se"] = _frac(r, g)
        row["gap"], row["gap_se"] = seen_unseen_gap(row["seen"], row["seen_se"], row["unseen"], row["unseen_se"])
        rows.append(row)
    rows.sort(key=lambda x: (not x["uses_history"], x["scorer"] or "", x["protocol"] or "", x["n_ref"] or 0))
    return rows


def history_table(rows: list[dict]):
    from prefcli.harness.tables import Column, Table

    cols = [
        Column("scorer", "Scorer"),
        Column("protocol", "Protocol"),
        Column("n_ref", "N_ref"),
        Column("top1", "Top-1 (%) ↑", pm=True, percent=True),
        Column("seen", "Seen (%) ↑", pm=True, percent=True),
        Column("unseen", "Unseen (%) ↑", pm=True, percent=True),
        Column("gap", "|Δ| ↓", pm=True, percent=True),
    ]
    return Table(
        "history",
        "Top-1 against N_ref, and the seen/unseen gap",
        cols,
        [dict(r) for r in rows],
        note="± bootstrap standard error over users; |Δ| = |seen − unseen|, errors added in quadrature; "
        "N_ref – : history-free scorer",
    )


def analyze_history(path: str | os.PathLike, out_dir: str | os.PathLike) -> tuple[dict, list[Path], list[str]]:
    """Write the figures; return (results, files written, notes for the user)."""
    from prefcli.harness import plots

    runs, prov = read_runs(path)
    rows = curve_rows(runs)
    notes = []
    nrefs = sorted({r["n_ref"] for r in rows if r["n_ref"] is not None})
    if not nrefs:
        notes.append("no history-conditioned scorer in these results: nothing to plot against N_ref")
    elif len(nrefs) == 1:
        notes.append(f"only N_ref {nrefs[0]} was run: the curve has one point (run bench with --n-ref 1,2,4,8)")
    out = Path(out_dir)
    files = plots.nref_plot(runs, out / "nref_top1") + plots.gap_plot(runs, out / "seen_unseen_gap")
    if nrefs and not any(r["gap"] is not None for r in rows if r["n_ref"] is not None):
        notes.append("no run has both seen and unseen users: the gap figure is not drawn")
    results = {
        "rows": rows,
        "n_refs": nrefs,
        "source": str(path),
        "bench": {
            "dataset": (prov.get("dataset") or {}).get("name"),
            "git_commit": prov.get("git_commit"),
            "scorers": prov.get("scorers"),
        },
    }
    return results, files, notes
