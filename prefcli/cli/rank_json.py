"""The JSON document of `prefcli rank`: the ranking and the scorer identity that produced it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefcli.ranking import RankResult


def rank_document(result: RankResult, **inputs: Any) -> dict:
    """The envelope of one ranking (docs/schemas/rank.schema.json); `inputs` are rank's arguments as given."""
    from prefcli import envelope

    ident = result.identity
    results = {
        "ranking": result.rows(),
        "total": result.total,
        "shown": len(result.ranked),
        "history_pairs": result.history_pairs,
        "kind": result.kind,
        "higher_is_better": result.higher_is_better,
        "comparisons": result.comparisons,
        "no_answer": result.no_answer,
        "ties": result.ties(),
        "notes": list(result.notes),
        "sheet": result.sheet,
        "stats": result.stats,
    }
    options = {
        "scorer_options": ident.get("options", {}),
        "dtype": ident.get("dtype"),
        "device": ident.get("device"),
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in inputs.items()},
    }
    return envelope.envelope("rank", results, scorer=result.scorer, weights=result.weights, revision=result.weights_id,
                             options=options, skipped=result.skipped,
                             provenance=envelope.provenance(scorer_identity=ident))  # fmt: skip
