"""The paper's tables, built from run records and rendered five ways.

- Table 1: 1-vs-1 top-1 accuracy per scorer, with its N_ref ("–" for
  history-free scorers) and a Random row (50).
- Table 2: 1-vs-3 top-1/2/3 accuracy per scorer and a Random row (25/50/75).
- Table 3: seen vs unseen users' 1-vs-1 top-1 and the gap |Δ| (smaller means
  the scorer generalizes to new people as well as to known ones).
- N_ref sweep: every history-conditioned run, one row per N_ref.

Rows hold accuracies as fractions and a missing N_ref as None: CSV and JSON
write them so (`null`, never "–"). Human renderings (terminal, Markdown,
LaTeX booktabs) show percentages with "±" the bootstrap standard error over
users, "–" for a missing value, and the best value of each ↑/↓ column among
the scorers in bold. History-conditioned scorers appear in Tables 1-3 at the
largest N_ref run. Headers mark ↑ (higher is better) or ↓ (lower is better).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prefcli.harness.metrics import random_expected, seen_unseen_gap

DASH = "–"


@dataclass
class Column:
    key: str
    header: str
    pm: bool = False  # value with "± <key>_se"
    digits: int = 1
    percent: bool = False  # the row holds a fraction; human renderings show it ×100
    better: str | None = None  # "max" or "min": the best value of the column is set in bold


@dataclass
class Table:
    """Rows hold raw numbers (accuracies as fractions, a missing value as None).

    Human renderings (terminal, Markdown, LaTeX) show percentages, "–" for a
    missing value and the best value of each ↑/↓ column in bold (baseline rows
    such as Random are references, never "best"); CSV and JSON keep the raw
    numbers, `null`/empty for a missing one.
    """

    name: str
    title: str
    columns: list[Column]
    rows: list[dict] = field(default_factory=list)
    note: str = ""

    # -- cells ---------------------------------------------------------------
    def _shown(self, v: Any, col: Column) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and col.percent:
            return 100.0 * v
        return v

    def cell(self, row: dict, col: Column, pm: str = " ± ") -> str:
        v = row.get(col.key)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return DASH
        v = self._shown(v, col)
        if isinstance(v, float):
            text = f"{v:.{col.digits}f}"
            se = row.get(f"{col.key}_se")
            if col.pm and se is not None and not (isinstance(se, float) and math.isnan(se)):
                text += f"{pm}{self._shown(se, col):.{col.digits}f}"
            return text
        return str(v)

    def best_rows(self, col: Column) -> set[int]:
        """Indices of the rows holding the column's best value, as displayed (ties all bold)."""
        if col.better not in ("max", "min"):
            return set()
        vals = {}
        for i, r in enumerate(self.rows):
            v = r.get(col.key)
            if r.get("baseline") or not isinstance(v, (int, float)) or isinstance(v, bool) or math.isnan(v):
                continue
            vals[i] = round(float(self._shown(v, col)), col.digits)
        if len(vals) < 2:
            return set()
        best = max(vals.values()) if col.better == "max" else min(vals.values())
        return {i for i, v in vals.items() if v == best}

    def _bold(self) -> dict[str, set[int]]:
        return {c.key: self.best_rows(c) for c in self.columns}

    def csv_columns(self) -> list[str]:
        out = []
        for c in self.columns:
            out.append(c.key)
            if c.pm:
                out.append(f"{c.key}_se")
        return out

    # -- renderings ----------------------------------------------------------
    def to_markdown(self) -> str:
        bold = self._bold()

        def md(i: int, r: dict, c: Column) -> str:
            text = self.cell(r, c).replace("|", "\\|")
            return f"**{text}**" if i in bold[c.key] else text

        lines = [
            f"### {self.title}",
            "",
            "| " + " | ".join(c.header.replace("|", "\\|") for c in self.columns) + " |",
            "|" + "|".join("---" for _ in self.columns) + "|",
        ]
        for i, r in enumerate(self.rows):
            lines.append("| " + " | ".join(md(i, r, c) for c in self.columns) + " |")
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        """A booktabs table (needs \\usepackage{booktabs}); the best value per ↑/↓ column in bold."""
        from prefcli import latex

        bold = self._bold()
        rows = []
        for i, r in enumerate(self.rows):
            cells = []
            for c in self.columns:
                text = latex_escape(self.cell(r, c))
                cells.append(f"\\textbf{{{text}}}" if i in bold[c.key] else text)
            rows.append(cells)
        refs = next(
            (i for i, r in enumerate(self.rows) if r.get("baseline")), None
        )  # references (Random) below the scorers
        return latex.table(
            self.name, self.title, [c.header for c in self.columns], rows, note=self.note, rule_before=refs
        )

    def to_csv(self) -> str:
        from prefcli.output import to_csv

        cols = self.csv_columns()
        rows = [{k: ("" if r.get(k) is None else _num(r.get(k))) for k in cols} for r in self.rows]
        return to_csv(rows, cols)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "columns": [
                {
                    "key": c.key,
                    "header": c.header,
                    "has_se": c.pm,
                    "unit": "fraction" if c.percent else None,
                    "better": c.better,
                }
                for c in self.columns
            ],
            "rows": [{k: _num(v) for k, v in r.items()} for r in self.rows],
            "note": self.note,
        }

    def to_json(self) -> str:
        return json.dumps(_jsonable(self.to_dict()), indent=2, ensure_ascii=False) + "\n"

    def rich(self):
        from rich.table import Table as RichTable
        from rich.text import Text

        bold = self._bold()
        from rich.markup import escape

        t = RichTable(title=escape(self.title), caption=escape(self.note) if self.note else None)
        for i, c in enumerate(self.columns):
            t.add_column(escape(c.header), justify="left" if i == 0 else "right", overflow="fold")
        for i, r in enumerate(self.rows):
            t.add_row(
                *(Text(self.cell(r, c), style="bold" if i in bold[c.key] else "") for c in self.columns),
                style="dim" if r.get("baseline") else None,
            )
        return t

    def render(self, fmt: str) -> str:
        if fmt == "markdown":
            return self.to_markdown()
        if fmt == "csv":
            return self.to_csv()
        if fmt == "json":
            return self.to_json()
        if fmt in ("latex", "tex"):
            return self.to_latex()
        raise ValueError(f"unknown format {fmt!r}")

    def print(self, fmt: str = "table", console=None) -> None:
        import sys

        if fmt == "table":
            from prefcli.output import print_rich_table

            print_rich_table(self.rich(), console)
        else:
            sys.stdout.write(self.render(fmt))


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX tabular (prefcli.latex.escape, the one escaper of every .tex)."""
    from prefcli.latex import escape

    return escape(text)


def _num(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    return _num(obj)


# -- building from runs ----------------------------------------------------------


def _frac(acc: dict | None) -> tuple[float | None, float | None]:
    """(value, se) of an accuracy record, as fractions; NaN becomes None."""
    if not acc:
        return None, None
    v, se = acc.get("value"), acc.get("se")
    return _num(v), (None if se is None or (isinstance(se, float) and math.isnan(se)) else se)


def _metric(run: dict, group: str, k: int) -> tuple[float | None, float | None]:
    return _frac(run.get("metrics", {}).get(group, {}).get(f"top{k}"))


def headline_runs(runs: Sequence[dict], protocol: str) -> list[dict]:
    """One run per scorer for this protocol: history-conditioned ones at their largest N_ref."""
    best: dict[str, dict] = {}
    for r in runs:
        if r.get("protocol") != protocol:
            continue
        cur = best.get(r["scorer"])
        if cur is None or (r.get("n_ref") or 0) > (cur.get("n_ref") or 0):
            best[r["scorer"]] = r
    order = list(dict.fromkeys(r["scorer"] for r in runs))
    return [best[s] for s in order if s in best]


def _nref_cell(run: dict) -> Any:
    """N_ref of a history-conditioned run; None (shown "–", written null) for a history-free one."""
    return run["n_ref"] if run.get("uses_history") else None


def _mark_pairwise(table: Table, runs: Sequence[dict]) -> Table:
    """A Kind column, only when a pairwise judge is among the rows (its scores are wins, not numbers)."""
    kinds = {r["scorer"]: r.get("kind", "pointwise") for r in runs}
    if "pairwise" not in kinds.values():
        return table
    table.columns.insert(1, Column("kind", "Kind"))
    for row in table.rows:
        if not row.get("baseline"):
            row["kind"] = kinds.get(row.get("scorer"), "pointwise")
    note = "pairwise: a judge of two images, ranked by round-robin wins (1-vs-3: six comparisons); an unanswered comparison is a miss"
    table.note = f"{table.note}; {note}" if table.note else note
    return table


def eval_table(run: dict) -> Table:
    """The table `prefcli eval` prints: every top-k for all, seen and unseen users."""
    if run.get("protocol") == "rating":
        return rating_eval_table(run)
    ks = [int(k[3:]) for k in next(iter(run["metrics"].values()), {}).keys()] or [1]
    # Rows are user groups of one scorer, not rivals: nothing is set in bold.
    cols = (
        [Column("group", "Users")]
        + [Column(f"top{k}", f"Top-{k} (%) ↑", pm=True, percent=True) for k in ks]
        + [Column("n_tasks", "Tasks"), Column("n_users", "People")]
    )
    rows = []
    for group, m in run["metrics"].items():
        row: dict[str, Any] = {"group": group}
        for k in ks:
            row[f"top{k}"], row[f"top{k}_se"] = _frac(m.get(f"top{k}"))
        first = m.get(f"top{ks[0]}", {})
        row["n_tasks"], row["n_users"] = first.get("n_tasks"), first.get("n_users")
        rows.append(row)
    nref = DASH if run.get("n_ref") is None else run["n_ref"]
    title = f"{run['scorer']} · {run.get('protocol')} · N_ref {nref} · {run.get('split') or ''}".rstrip(" ·")
    note = "± bootstrap standard error over users; ties count as misses"
    if run.get("kind") == "pairwise":
        pw = run.get("pairwise") or {}
        title += " · pairwise"
        note += (
            f"; pairwise judge ranked by round-robin wins: {pw.get('comparisons', 0)} comparison(s), "
            f"{pw.get('no_answer', 0)} without an answer (counted as misses)"
        )
    return Table("eval", title, cols, rows, note=note)


def table1(runs: Sequence[dict], references: Sequence[dict] | None = None) -> Table:
    cols = [
        Column("scorer", "Scorer"),
        Column("n_ref", "N_ref"),
        Column("top1", "Top-1 (%) ↑", pm=True, percent=True, better="max"),
        Column("n_tasks", "Tasks"),
    ]
    rows = []
    for r in headline_runs(runs, "1v1"):
        v, se = _metric(r, "all", 1)
        rows.append(
            {"scorer": r["scorer"], "n_ref": _nref_cell(r), "top1": v, "top1_se": se, "n_tasks": r.get("n_tasks")}
        )
    rows.append(
        {
            "scorer": "Random",
            "n_ref": None,
            "top1": random_expected(2, 1),
            "top1_se": None,
            "n_tasks": None,
            "baseline": True,
        }
    )
    note = "± bootstrap standard error over users; ties count as misses"
    quoted = [q for q in references or () if q.get("protocol") == "1v1" and q.get("metric") == "top1"]
    for q in quoted:
        # Published accuracies are quoted in percent; rows hold fractions like every other row.
        rows.append(
            {
                "scorer": q["label"],
                "n_ref": None,
                "top1": float(q["value"]) / 100.0,
                "top1_se": None,
                "n_tasks": None,
                "baseline": True,
                "quoted": True,
                "verified": bool(q.get("verified")),
                "source": q.get("source"),
                "source_note": q.get("note"),
            }
        )
    if quoted:
        srcs = sorted({q["source"] for q in quoted})
        note += "; [quoted] rows are published numbers, not runs of this harness (" + "; ".join(srcs) + ")"
        if any(not q.get("verified") for q in quoted):
            note += "; 'unverified': not checked against the paper here"
    return _mark_pairwise(Table("table1_1v1", "Table 1 · 1-vs-1 top-1 accuracy", cols, rows, note=note), runs)


def table2(runs: Sequence[dict]) -> Table:
    cols = (
        [Column("scorer", "Scorer"), Column("n_ref", "N_ref")]
        + [Column(f"top{k}", f"Top-{k} (%) ↑", pm=True, percent=True, better="max") for k in (1, 2, 3)]
        + [Column("n_tasks", "Tasks")]
    )
    rows = []
    for r in headline_runs(runs, "1v3"):
        row: dict[str, Any] = {"scorer": r["scorer"], "n_ref": _nref_cell(r), "n_tasks": r.get("n_tasks")}
        for k in (1, 2, 3):
            row[f"top{k}"], row[f"top{k}_se"] = _metric(r, "all", k)
        rows.append(row)
    rnd: dict[str, Any] = {"scorer": "Random", "n_ref": None, "n_tasks": None, "baseline": True}
    for k in (1, 2, 3):
        rnd[f"top{k}"], rnd[f"top{k}_se"] = random_expected(4, k), None
    rows.append(rnd)
    return _mark_pairwise(
        Table(
            "table2_1v3",
            "Table 2 · 1-vs-3 top-k accuracy",
            cols,
            rows,
            note="± bootstrap standard error over users; ties count as misses",
        ),
        runs,
    )


def table3(runs: Sequence[dict], protocol: str = "1v1") -> Table:
    cols = [
        Column("scorer", "Scorer"), Column("n_ref", "N_ref"),
        Column("seen", "Seen top-1 (%) ↑", pm=True, percent=True, better="max"),
        Column("unseen", "Unseen top-1 (%) ↑", pm=True, percent=True, better="max"),
        Column("gap", "|Δ| ↓", pm=True, percent=True, better="min"),
    ]  # fmt: skip
    rows = []
    for r in headline_runs(runs, protocol):
        s, s_se = _metric(r, "seen", 1)
        u, u_se = _metric(r, "unseen", 1)
        gap, gap_se = seen_unseen_gap(s, s_se, u, u_se)
        rows.append(
            {
                "scorer": r["scorer"],
                "n_ref": _nref_cell(r),
                "seen": s,
                "seen_se": s_se,
                "unseen": u,
                "unseen_se": u_se,
                "gap": gap,
                "gap_se": gap_se,
            }
        )
    return _mark_pairwise(
        Table(
            "table3_seen_unseen",
            f"Table 3 · seen vs unseen users ({protocol} top-1)",
            cols,
            rows,
            note="|Δ| = |seen − unseen|; its ± adds both errors in quadrature",
        ),
        runs,
    )


def nref_table(runs: Sequence[dict]) -> Table:
    cols = [
        Column("scorer", "Scorer"),
        Column("protocol", "Protocol"),
        Column("n_ref", "N_ref"),
        Column("top1", "Top-1 (%) ↑", pm=True, percent=True),
        Column("n_tasks", "Tasks"),
    ]
    rows = []
    hist = (r for r in runs if r.get("uses_history") and r.get("protocol") != "rating")
    for r in sorted(hist, key=lambda r: (r["scorer"], r["protocol"], r["n_ref"] or 0)):
        v, se = _metric(r, "all", 1)
        rows.append(
            {
                "scorer": r["scorer"],
                "protocol": r["protocol"],
                "n_ref": r["n_ref"],
                "top1": v,
                "top1_se": se,
                "n_tasks": r.get("n_tasks"),
            }
        )
    return Table("nref_sweep", "Top-1 accuracy against N_ref (history-conditioned scorers)", cols, rows)


def bench_tables(runs: Sequence[dict], references: Sequence[dict] | None = None) -> list[Table]:
    """Every table the runs support; `references` are quoted published rows (prefcli.harness.references)."""
    protocols = {r.get("protocol") for r in runs}
    choice = protocols - {"rating"}
    out = []
    if "1v1" in protocols:
        out.append(table1(runs, references))
    if "1v3" in protocols:
        out.append(table2(runs))
    if choice:
        out.append(table3(runs, "1v1" if "1v1" in choice else sorted(choice)[0]))
    if "rating" in protocols:
        out.append(rating_table(runs))
    if any(r.get("uses_history") and r.get("protocol") != "rating" for r in runs):
        out.append(nref_table(runs))
    return out


# -- rating tasks ------------------------------------------------------------------

RATING_METRICS = (
    # key, header, scale, digits
    ("spearman", "Spearman ρ ↑", 1.0, 3),
    ("kendall", "Kendall τ ↑", 1.0, 3),
    ("pairwise_accuracy", "Pairwise acc. (%) ↑", 1.0, 1),  # a fraction in the rows; shown as percent
    ("mae_calibrated", "MAE (cal.) ↓", 1.0, 3),
)


def _better(header: str) -> str | None:
    return "max" if "↑" in header else "min" if "↓" in header else None


def _rating_cell(run: dict, group: str, key: str, scale: float) -> tuple[float | None, float | None]:
    m = run.get("metrics", {}).get(group, {}).get(key)
    if not m or m.get("value") is None:
        return None, None
    v, se = m["value"], m.get("se")
    if isinstance(v, float) and math.isnan(v):
        return None, None
    return scale * v, (None if se is None or (isinstance(se, float) and math.isnan(se)) else scale * se)


def rating_table(runs: Sequence[dict]) -> Table:
    """Rating tasks: per-user rank correlations, pairwise accuracy and calibrated MAE, averaged over users."""
    cols = [Column("scorer", "Scorer"), Column("n_ref", "N_ref")]
    cols += [Column(k, h, pm=True, digits=d, percent="(%)" in h, better=_better(h)) for k, h, _, d in RATING_METRICS]
    cols += [
        Column("seen_spearman", "Seen ρ ↑", pm=True, digits=3, better="max"),
        Column("unseen_spearman", "Unseen ρ ↑", pm=True, digits=3, better="max"),
        Column("n_users", "People"),
    ]
    rows = []
    for r in headline_runs(runs, "rating"):
        row: dict[str, Any] = {"scorer": r["scorer"], "n_ref": _nref_cell(r)}
        for k, _, scale, _ in RATING_METRICS:
            row[k], row[f"{k}_se"] = _rating_cell(r, "all", k, scale)
        for g in ("seen", "unseen"):
            row[f"{g}_spearman"], row[f"{g}_spearman_se"] = _rating_cell(r, g, "spearman", 1.0)
        row["n_users"] = (r.get("metrics", {}).get("all", {}).get("spearman") or {}).get("n_users")
        rows.append(row)
    return Table(
        "table_ratings",
        "Rating tasks · predict each user's ratings",
        cols,
        rows,
        note="per-user metrics averaged over users, ± bootstrap standard error over users; pairwise accuracy over the user's "
        "pairs with different ratings (a tied score is a miss); MAE after a per-user least-squares affine map of scores to ratings",
    )


def rating_eval_table(run: dict) -> Table:
    """What `prefcli eval --protocol rating` prints: every rating metric for all, seen and unseen users."""
    cols = (
        [Column("group", "Users")]
        + [Column(k, h, pm=True, digits=d, percent="(%)" in h) for k, h, _, d in RATING_METRICS]
        + [Column("n_users", "People")]
    )
    rows = []
    for group in run["metrics"]:
        row: dict[str, Any] = {"group": group}
        for k, _, scale, _ in RATING_METRICS:
            row[k], row[f"{k}_se"] = _rating_cell(run, group, k, scale)
        row["n_users"] = (run["metrics"][group].get("spearman") or {}).get("n_users")
        rows.append(row)
    nref = DASH if run.get("n_ref") is None else run["n_ref"]
    title = f"{run['scorer']} · rating · N_ref {nref} · {run.get('split') or ''}".rstrip(" ·")
    return Table(
        "eval", title, cols, rows, note="per-user metrics averaged over users; ± bootstrap standard error over users"
    )
