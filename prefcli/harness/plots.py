"""The history figures: accuracy against N_ref, and the seen/unseen gap per N_ref.

- ``nref_plot`` (the paper's figure 5): top-1 against history length, one
  curve per history-conditioned scorer, one panel per protocol. History-free
  scorers are horizontal lines (N_ref does not change them; equal ones are
  one line carrying every name), chance a dotted grey line.
- ``gap_plot`` (figure 6): seen users' and unseen users' top-1 against N_ref
  (filled markers and solid lines for seen, open markers and dashed lines
  for unseen), and beside it the gap |seen − unseen| with its error.

Error bars are the bootstrap standard errors over users; the gap's adds the
two groups' in quadrature (they are disjoint users). Each figure is written
as PNG (300 dpi), PDF and SVG (``prefcli.figures``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefcli.harness.metrics import random_expected, seen_unseen_gap

RANDOM = "random"
BASELINE_STYLES = ((0, (6, 2)), (0, (2, 2)), (0, (6, 2, 2, 2)), (0, (1, 3)))


def _acc(run: dict, group: str = "all") -> tuple[float, float] | None:
    m = run.get("metrics", {}).get(group, {}).get("top1")
    if not m or m.get("value") is None:
        return None
    se = m.get("se")
    se = 0.0 if se is None or (isinstance(se, float) and math.isnan(se)) else float(se)
    return 100.0 * float(m["value"]), 100.0 * se


def _protocols(runs: Sequence[dict]) -> list[str]:
    found = {r.get("protocol") for r in runs}
    return [p for p in ("1v1", "1v3") if p in found] + sorted(p for p in found - {"1v1", "1v3"} if p)


def history_runs(runs: Sequence[dict]) -> list[dict]:
    return [r for r in runs if r.get("uses_history") and r.get("n_ref")]


def _log2_axis(ax: Any, xs: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([str(x) for x in xs])
    ax.minorticks_off()
    ax.set_xlabel("N_ref (history pairs)")
    ax.grid(alpha=0.3, linewidth=0.5)


def _shared_legend(fig: Any, axes: Sequence[Any]) -> None:
    """One legend for all panels, right of the last one (outside every axes)."""
    from matplotlib.container import ErrorbarContainer

    seen: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    # The measured curves first, then the reference lines.
    seen = dict(sorted(seen.items(), key=lambda kv: not isinstance(kv[1], ErrorbarContainer)))
    if seen:
        axes[-1].legend(
            list(seen.values()),
            list(seen),
            loc="upper left",
            bbox_to_anchor=(1.03, 1.0),
            borderaxespad=0.0,
            frameon=False,
        )


def nref_plot(runs: Sequence[dict], stem: str | os.PathLike, formats: Sequence[str] | None = None) -> list[Path]:
    """Top-1 against N_ref; STEM.png/.pdf/.svg. Empty list when no history-conditioned scorer ran."""
    from prefcli import figures

    hist = history_runs(runs)
    if not hist:
        return []
    plt = figures.pyplot()
    protocols = _protocols(hist)
    fig, axes = plt.subplots(1, len(protocols), figsize=(3.6 * len(protocols), 2.9), squeeze=False)
    axes = list(axes[0])
    names = list(dict.fromkeys(r["scorer"] for r in hist))
    for ax, protocol in zip(axes, protocols):
        mine = [r for r in hist if r["protocol"] == protocol]
        xs_all = sorted({r["n_ref"] for r in mine})
        for i, name in enumerate(names):
            pts = sorted((r["n_ref"], _acc(r)) for r in mine if r["scorer"] == name and _acc(r) is not None)
            if not pts:
                continue
            shift = 2 ** figures.dodge(i, len(names))
            ax.errorbar(
                [x * shift for x, _ in pts],
                [a[0] for _, a in pts],
                yerr=[a[1] for _, a in pts],
                capsize=2.5,
                markersize=4.5,
                linewidth=1.2,
                label=name,
                **figures.series_style(i),
            )
        flat = [
            (r["scorer"], _acc(r))
            for r in runs
            if not r.get("uses_history") and r.get("protocol") == protocol and _acc(r) is not None
        ]
        n_cand = max(r.get("n_candidates") or 2 for r in mine)
        flat.append((RANDOM, (100 * random_expected(n_cand, 1), 0.0)))
        j = 0
        for labels, (v, _) in _merge_acc(flat):
            # Equal reference lines are one line naming all of them: none hides behind another.
            if RANDOM in labels:
                others = [n for n in labels if n != RANDOM]
                label = RANDOM + (f" = {' = '.join(others)} (no history)" if others else "")
                ax.axhline(v, linestyle=":", color="grey", linewidth=1.1, label=label)
                continue
            ax.axhline(
                v,
                color=figures.PALETTE[(len(names) + j) % len(figures.PALETTE)],
                linestyle=BASELINE_STYLES[j % len(BASELINE_STYLES)],
                linewidth=1.1,
                label=" = ".join(labels) + " (no history)",
            )
            j += 1
        _log2_axis(ax, xs_all)
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(f"{protocol}: top-1 vs N_ref")
    fig.tight_layout()  # before the legend: it goes outside, on canvas that bbox_inches="tight" adds
    _shared_legend(fig, axes)
    paths = figures.save_figure(fig, stem, formats or figures.FORMATS)
    plt.close(fig)
    return paths


def _merge_acc(flat: Sequence[tuple[str, tuple[float, float]]]) -> list[tuple[list[str], tuple[float, float]]]:
    """History-free rows with the same accuracy (to the plotted precision) drawn once."""
    from prefcli.figures import merge_equal

    merged = merge_equal([(n, a[0]) for n, a in flat], tol=1e-6)
    return [(names, (v, 0.0)) for names, v in merged]


def gap_rows(runs: Sequence[dict], protocol: str | None = None) -> list[dict]:
    """Per (scorer, N_ref): seen and unseen top-1 (fractions), the gap |seen − unseen| and their SEs."""
    hist = history_runs(runs)
    if protocol is None:
        ps = _protocols(hist)
        protocol = ps[0] if ps else None
    out = []
    for r in sorted((r for r in hist if r["protocol"] == protocol), key=lambda r: (r["scorer"], r["n_ref"])):
        row: dict[str, Any] = {"scorer": r["scorer"], "protocol": protocol, "n_ref": r["n_ref"]}
        for g in ("seen", "unseen"):
            m = r.get("metrics", {}).get(g, {}).get("top1") or {}
            row[g] = m.get("value")
            se = m.get("se")
            row[f"{g}_se"] = None if se is None or (isinstance(se, float) and math.isnan(se)) else se
        row["gap"], row["gap_se"] = seen_unseen_gap(row["seen"], row["seen_se"], row["unseen"], row["unseen_se"])
        out.append(row)
    return out


def gap_plot(
    runs: Sequence[dict], stem: str | os.PathLike, protocol: str | None = None, formats: Sequence[str] | None = None
) -> list[Path]:
    """Seen and unseen top-1 per N_ref, and their gap; empty when no run has both groups."""
    from prefcli import figures

    rows = [r for r in gap_rows(runs, protocol) if r["gap"] is not None]
    if not rows:
        return []
    plt = figures.pyplot()
    fig, (ax_acc, ax_gap) = plt.subplots(1, 2, figsize=(7.2, 2.9))
    names = list(dict.fromkeys(r["scorer"] for r in rows))
    xs_all = sorted({r["n_ref"] for r in rows})
    for i, name in enumerate(names):
        mine = [r for r in rows if r["scorer"] == name]
        st = figures.series_style(i)
        shift = 2 ** figures.dodge(i, len(names))
        xs = [r["n_ref"] * shift for r in mine]
        for g, ls, fill in (("seen", "-", st["color"]), ("unseen", "--", "white")):
            ax_acc.errorbar(
                xs,
                [100 * r[g] for r in mine],
                yerr=[100 * (r[f"{g}_se"] or 0) for r in mine],
                color=st["color"],
                marker=st["marker"],
                markerfacecolor=fill,
                linestyle=ls,
                capsize=2.5,
                markersize=4.5,
                linewidth=1.2,
                label=f"{name}, {g}",
            )
        ax_gap.errorbar(
            xs,
            [100 * r["gap"] for r in mine],
            yerr=[100 * (r["gap_se"] or 0) for r in mine],
            capsize=2.5,
            markersize=4.5,
            linewidth=1.2,
            label=f"{name}, |Δ|",
            **st,
        )
    for ax in (ax_acc, ax_gap):
        _log2_axis(ax, xs_all)
    ax_acc.set_ylabel("top-1 accuracy (%)")
    ax_acc.set_title(f"{rows[0]['protocol']}: seen vs unseen users")
    ax_gap.set_ylabel("|seen − unseen| (points)")
    ax_gap.set_title("generalization gap ↓")
    ax_gap.set_ylim(bottom=0)
    fig.tight_layout()
    _shared_legend(fig, [ax_acc, ax_gap])
    paths = figures.save_figure(fig, stem, formats or figures.FORMATS)
    plt.close(fig)
    return paths
