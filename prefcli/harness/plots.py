"""The N_ref plot: top-1 accuracy against history length, one line per history-conditioned scorer.

History-free scorers appear as dashed horizontal lines (N_ref does not
change them) and chance as a dotted line, so the curve reads against both.
Error bars are the bootstrap standard errors over users.
"""

from __future__ import annotations

import os
from typing import Sequence

from prefcli.harness.metrics import random_expected


def nref_plot(runs: Sequence[dict], path: str | os.PathLike, dpi: int = 120) -> bool:
    """Write a PNG (atomically); False when no history-conditioned scorer was run."""
    hist = [r for r in runs if r.get("uses_history") and r.get("n_ref")]
    if not hist:
        return False
    import matplotlib

    matplotlib.use("Agg")  # no display needed, ever
    import matplotlib.pyplot as plt

    from prefcli import atomic

    protocols = [p for p in ("1v1", "1v3") if any(r["protocol"] == p for r in hist)]
    protocols += sorted({r["protocol"] for r in hist} - set(protocols))
    fig, axes = plt.subplots(1, len(protocols), figsize=(5.2 * len(protocols), 4.0), squeeze=False)
    for ax, protocol in zip(axes[0], protocols):
        mine = [r for r in hist if r["protocol"] == protocol]
        xs_all = sorted({r["n_ref"] for r in mine})
        color = 0
        for name in dict.fromkeys(r["scorer"] for r in mine):
            pts = sorted((r["n_ref"], r["metrics"]["all"]["top1"]) for r in mine if r["scorer"] == name and "all" in r.get("metrics", {}))
            if not pts:
                continue
            xs = [p[0] for p in pts]
            ys = [100 * p[1]["value"] for p in pts]
            es = [100 * (p[1]["se"] or 0) if p[1]["se"] == p[1]["se"] else 0 for p in pts]
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=name, color=f"C{color % 10}")
            color += 1
        for r in runs:
            if r.get("uses_history") or r.get("protocol") != protocol or "all" not in r.get("metrics", {}):
                continue
            ax.axhline(100 * r["metrics"]["all"]["top1"]["value"], linestyle="--", linewidth=1, alpha=0.8, label=f"{r['scorer']} (no history)", color=f"C{color % 10}")
            color += 1
        n_cand = max(r.get("n_candidates") or 2 for r in mine)
        ax.axhline(100 * random_expected(n_cand, 1), linestyle=":", color="grey", linewidth=1, label="random")
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs_all)
        ax.set_xticklabels([str(x) for x in xs_all])
        ax.set_xlabel("N_ref (history pairs)")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(f"{protocol}: top-1 vs N_ref")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best", framealpha=0.8)
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return True
