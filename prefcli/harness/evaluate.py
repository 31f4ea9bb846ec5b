"""One evaluation: a scorer on a task list, summarized into a run record."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefcli.harness import metrics
from prefcli.harness.cache import CacheDir
from prefcli.harness.runner import ScorerHandle, run_scorer
from prefcli.types import RankTask


def evaluate(
    handle: ScorerHandle,
    tasks: Sequence[RankTask],
    *,
    cache: CacheDir | None = None,
    batch_size: int = 32,
    n_boot: int = metrics.DEFAULT_BOOTSTRAP,
    seed: int = metrics.DEFAULT_SEED,
    progress: bool = False,
    split: str | None = None,
    protocol: str | None = None,
    n_ref: int | None = None,
    label: str | None = None,
    workers: int = 0,
) -> tuple[dict, list[dict]]:
    """Run and score; return (run record, per-task records).

    The run record holds the scorer, its weights id, the protocol and N_ref
    (None for history-free scorers: their N_ref is irrelevant), metrics per
    group ("all", "seen", "unseen") and what was computed vs. cached, and where the seconds went
    (`stats`). `workers`: decode threads (prefcli.harness.runner.run_scorer); the scores do not change.
    """
    records, stats = run_scorer(
        handle, tasks, cache=cache, batch_size=batch_size, progress=progress, label=label, workers=workers
    )
    higher = handle.spec.higher_is_better
    n_cand = max((len(t.candidates) for t in tasks), default=0)
    if protocol is None and tasks:
        protocol = tasks[0].protocol
    if protocol == "rating":
        # Rating tasks: the user's true ratings travel with the records; rank correlations etc.
        from prefcli.harness import rating_metrics

        for rec, task in zip(records, tasks):
            rec["ratings"] = list(task.ratings or ())
        summary = rating_metrics.summarize(records, higher_is_better=higher, n_boot=n_boot, seed=seed)
    else:
        summary = metrics.summarize(records, higher_is_better=higher, n_boot=n_boot, seed=seed)
    if handle.spec.pairwise:
        comps = [c for r in records for c in r.get("comparisons", ())]
        pairwise = {"comparisons": len(comps), "no_answer": sum(1 for c in comps if c.get("winner") is None)}
    run: dict[str, Any] = {
        "scorer": handle.name,
        "weights": handle.weights,
        "weights_id": handle.weights_id,
        "identity": handle.identity,
        "uses_history": handle.uses_history,
        "kind": handle.spec.kind,  # "pairwise": scores are round-robin wins of A-or-B judgements
        "higher_is_better": higher,
        "split": split,
        "protocol": protocol,
        "n_ref": n_ref if handle.uses_history else None,
        "n_candidates": n_cand,
        "n_tasks": len(tasks),
        "bootstrap": {"unit": "user", "replicates": n_boot, "seed": seed},
        "metrics": summary,
        "stats": stats.as_dict(),
    }
    if handle.spec.pairwise:
        run["pairwise"] = pairwise
    return run, records
