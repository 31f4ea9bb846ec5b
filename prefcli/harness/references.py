"""Published numbers that `bench` prints beside ours, always marked as quoted.

A quoted row is not a run of this harness: it is copied from a paper, with
where it comes from and whether it was checked against that source. Rows
that could not be checked are printed as "quoted, unverified", never as
confirmed. The dataset's own description (dataset.json `kind` and
`benchmark.subset`, written by the importers) selects the rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Reference:
    kind: str  # dataset.json "kind" of the benchmark it belongs to
    subset: str | None
    method: str
    protocol: str
    metric: str  # a metric key of the run records, e.g. "top1"
    value: float  # in the unit the tables print (percent for accuracies)
    source: str
    verified: bool
    note: str = ""

    def label(self) -> str:
        return f"{self.method} [quoted{'' if self.verified else ', unverified'}]"


_PREFERTHINKER = "PreferThinker (Xu et al., ICLR 2026, arXiv 2511.00609), Pick-a-Pic real-user test (TEST_PICKAPIC)"
_UNCHECKED = (
    "value as given in prefcli issue 13; the paper's results table could not be read offline "
    "(its README and eval_PreferThinker.py give no numbers), so it is not confirmed here"
)

QUOTED: tuple[Reference, ...] = (
    Reference("preferimg", "TEST_PICKAPIC", "PreferThinker", "1v1", "top1", 65.7, _PREFERTHINKER, False, _UNCHECKED),
    Reference("preferimg", "TEST_PICKAPIC", "PickScore", "1v1", "top1", 67.9, _PREFERTHINKER, False, _UNCHECKED),
    Reference("preferimg", "TEST_PICKAPIC", "ViPer", "1v1", "top1", 62.2, _PREFERTHINKER, False, _UNCHECKED),
)


def references_for(info: dict | None) -> list[dict]:
    """The quoted rows that belong to a dataset (by its dataset.json), as plain dicts."""
    if not info:
        return []
    kind = info.get("kind")
    subset = (info.get("benchmark") or {}).get("subset")
    out = []
    for r in QUOTED:
        if r.kind == kind and (r.subset is None or r.subset == subset):
            out.append({**asdict(r), "label": r.label()})
    return out
