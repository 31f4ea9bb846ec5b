"""Rank one folder with several scorers: `prefcli rank DIR --scorer a --scorer b=2`.

Each scorer goes through the single-scorer path (prefcli.ranking: the same
checks, history, runner and notes), loaded once and run once; the images every
scorer scored are then ordered by a combination of their scores
(prefcli.combine). The table has one column per scorer, the JSON every
scorer's identity, the contact sheet every scorer's number under each image.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefcli.combine import DEFAULT_METHOD, check_method, combine, higher_is_better
from prefcli.errors import ConfigError, ImageError

if TYPE_CHECKING:  # pragma: no cover
    from prefcli.ranking import RankResult
    from prefcli.types import Candidate, UserHistory

#: (scorer name, done, total) after each scored batch.
MultiProgressFn = Callable[[str, int, int], None]


@dataclass
class MultiRankedImage:
    rank: int
    score: float  # the combination (mean rank: lower is better; z-mean: higher is better)
    path: str
    image_id: str
    prompt: str | None
    scores: dict[str, float]
    ranks: dict[str, float]  # each scorer's own rank of this image (a tie shares the mean rank)
    tie: bool = False

    def as_row(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "score": self.score,
            "tie": self.tie,
            "path": self.path,
            "image_id": self.image_id,
            "prompt": self.prompt,
            "scores": dict(self.scores),
            "ranks": dict(self.ranks),
        }


@dataclass
class MultiRankResult:
    """The combined ranking and each scorer's own RankResult (all images, in its own order)."""

    ranked: list[MultiRankedImage]
    results: dict[str, RankResult]
    method: str = DEFAULT_METHOD
    weights: dict[str, float] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    total: int = 0
    sheet: str | None = None

    @property
    def scorers(self) -> list[str]:
        return list(self.results)

    @property
    def higher_is_better(self) -> bool:
        return higher_is_better(self.method)

    @property
    def history_pairs(self) -> int:
        return max((r.history_pairs for r in self.results.values()), default=0)

    def ties(self) -> int:
        return sum(1 for r in self.ranked if r.tie)

    def rows(self) -> list[dict[str, Any]]:
        return [r.as_row() for r in self.ranked]

    def format_score(self, name: str, score: float) -> str:
        """A scorer's score as its own single ranking prints it (one format per scorer)."""
        return self.results[name].format_score(score)

    def format_combined(self, value: float) -> str:
        import math

        return "nan" if math.isnan(value) else f"{value:.{3 if self.method == 'mean-rank' else 4}f}"


def parse_scorers(values: Sequence[str]) -> list[tuple[str, float]]:
    """`--scorer NAME[=WEIGHT]` values, read as `generate --reward` reads its own."""
    from prefcli.generate.rewards import parse_rewards

    return parse_rewards(values, flag="--scorer")


def combine_results(
    results: Mapping[str, RankResult],
    *,
    method: str = DEFAULT_METHOD,
    weights: Mapping[str, float] | None = None,
    top: int | None = None,
    skipped: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
) -> MultiRankResult:
    """One ranking from several full single-scorer rankings of the same candidates.

    Only images every scorer scored are combined (an image one scorer could not
    decode is skipped by all); ties in the combination are ordered by path.
    """
    from prefcli.ranking import order, tied_positions

    names = list(results)
    key = lambda r: r.path or r.image_id  # noqa: E731
    rows = {name: {key(r): r for r in res.ranked} for name, res in results.items()}
    common = [k for k in rows[names[0]] if all(k in rows[n] for n in names[1:])]
    common.sort()
    if not common:
        raise ImageError("no image was scored by every scorer")
    scores = {n: [rows[n][k].score for k in common] for n in names}
    combined, per_ranks = combine(
        scores, method=method, weights=weights, higher={n: results[n].higher_is_better for n in names}
    )
    full = order(combined, common, higher_is_better=higher_is_better(method))
    tied = tied_positions(combined, full)
    idx = full[:top] if top is not None else full
    first = rows[names[0]]
    ranked = [
        MultiRankedImage(
            rank=r,
            score=combined[i],
            path=first[common[i]].path,
            image_id=first[common[i]].image_id,
            prompt=first[common[i]].prompt,
            scores={n: scores[n][i] for n in names},
            ranks={n: per_ranks[n][i] for n in names},
            tie=i in tied,
        )
        for r, i in enumerate(idx, start=1)
    ]
    seen: dict[str, str] = {}
    for item, reason in list(skipped) + [s for res in results.values() for s in res.skipped]:
        seen.setdefault(str(item), str(reason))
    all_notes = list(notes)
    for res in results.values():
        all_notes += [n for n in res.notes if n not in all_notes]
    return MultiRankResult(
        ranked=ranked,
        results=dict(results),
        method=method,
        weights={n: float((weights or {}).get(n, 1.0)) for n in names},
        skipped=list(seen.items()),
        notes=all_notes,
        total=len(common),
    )


def _check(scorers: Sequence[tuple[str, float]], method: str, top: int | None) -> None:
    check_method(method)
    if not scorers:
        raise ConfigError("give at least one --scorer")
    if top is not None and top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")


def rank_folder_multi(
    candidates: str | os.PathLike,
    *,
    scorers: Sequence[tuple[str, float]],
    method: str = DEFAULT_METHOD,
    weights: Mapping[str, str | None] | None = None,
    scorer_options: Mapping[str, Mapping[str, Any]] | None = None,
    top: int | None = None,
    sheet: str | os.PathLike | None = None,
    sheet_title: str | None = None,
    sheet_options: dict[str, Any] | None = None,
    progress: MultiProgressFn | None = None,
    **common: Any,
) -> MultiRankResult:
    """`prefcli rank` with several scorers: prefcli.ranking.rank_folder once per scorer, then combined.

    `scorers` are (name, weight) pairs; `weights` and `scorer_options` map a
    scorer to its weights spec and options; `common` are rank_folder's other
    arguments (device, dtype, likes, dislikes, prompts, batch_size, ...).
    """
    from prefcli.ranking import rank_folder, short_id

    _check(scorers, method, top)
    if sheet is not None:
        from prefcli.sheet import sheet_format

        sheet_format(sheet)  # a bad suffix fails now, not after scoring
    handles = _handles(scorers, weights, scorer_options, common)
    results = {}
    for (name, _), handle in zip(scorers, handles):
        tick = (lambda done, total, _n=name: progress(_n, done, total)) if progress else None
        res = rank_folder(candidates, scorer=handle, progress=tick, **common)
        results[res.scorer] = res
    result = combine_results(results, method=method, weights=dict(scorers), top=top)
    if sheet is not None:
        # As a single ranking's title: what scored the sheet, random `tiny` weights included.
        ids = ", ".join(f"{n} [{short_id(r.weights_id) or '?'}]" for n, r in results.items())
        title = f"{sheet_title or 'prefcli rank · ' + Path(candidates).resolve().name} · {method} of {ids}"
        opts = dict(sheet_options or {})
        personal = any(r.history_pairs for r in results.values())
        shown_history = _history_of(common) if opts.pop("history", False) and personal else None
        shown_prompt = common.get("prompt") if opts.pop("prompt", False) else None
        result.sheet = str(
            write_multi_sheet(result, sheet, title=title, history=shown_history, prompt=shown_prompt, **opts)
        )
    return result


def _handles(
    scorers: Sequence[tuple[str, float]],
    weights: Mapping[str, str | None] | None,
    scorer_options: Mapping[str, Mapping[str, Any]] | None,
    common: dict[str, Any],
) -> list[Any]:
    """Every scorer resolved (spec, options, device) before any is loaded: a bad second scorer fails before the first scores.
    Takes `device` and `dtype` out of `common`: they belong to the handles."""
    from prefcli.harness.handle import ScorerHandle

    device, dtype = common.pop("device", "auto"), common.pop("dtype", None)
    return [
        ScorerHandle(
            name,
            (weights or {}).get(name),
            device=device,
            dtype=dtype,
            options=dict((scorer_options or {}).get(name, {})),
        )
        for name, _ in scorers
    ]


def _history_of(common: Mapping[str, Any]) -> UserHistory | None:
    """The history the sheet shows (read again from the folders: the scorers keep no copy)."""
    from prefcli.data.folders import as_prompt_map, history_from_folders

    if common.get("history") is not None:
        return common["history"]
    if common.get("likes") is None and common.get("pairs") is None:
        return None
    history, _ = history_from_folders(
        common.get("likes"),
        common.get("dislikes"),
        as_prompt_map(common.get("history_prompts")),
        pairs=common.get("pairs"),
    )
    return history


def rank_candidates_multi(
    candidates: Sequence[Candidate],
    *,
    scorers: Sequence[tuple[str, float]],
    method: str = DEFAULT_METHOD,
    weights: Mapping[str, str | None] | None = None,
    scorer_options: Mapping[str, Mapping[str, Any]] | None = None,
    top: int | None = None,
    skipped: Sequence[tuple[str, str]] = (),
    **common: Any,
) -> MultiRankResult:
    """The Python API's several-scorer ranking: prefcli.ranking.rank_candidates once per scorer, then combined."""
    from prefcli.ranking import rank_candidates

    _check(scorers, method, top)
    handles = _handles(scorers, weights, scorer_options, common)
    results = {}
    for handle in handles:
        res = rank_candidates(candidates, scorer=handle, **common)
        results[res.scorer] = res
    return combine_results(results, method=method, weights=dict(scorers), top=top, skipped=skipped)


def write_multi_sheet(result: MultiRankResult, path: str | os.PathLike, **kwargs: Any) -> Path:
    """The contact sheet of a combined ranking: '#rank  combined', a line per scorer with its score, the file name."""
    from prefcli.ranking import RankedImage, write_rank_sheet

    shown = [
        RankedImage(rank=r.rank, score=r.score, path=r.path, image_id=r.image_id, prompt=r.prompt, tie=r.tie)
        for r in result.ranked
    ]
    # One line per scorer: a caption line is cut to the thumbnail's width.
    lines = ["\n".join(f"{n} {result.format_score(n, r.scores[n])}" for n in result.scorers) for r in result.ranked]
    return write_rank_sheet(
        shown, path, score_format=".3f" if result.method == "mean-rank" else ".4f", extra_lines=lines, **kwargs
    )


def multirank_document(result: MultiRankResult, **inputs: Any) -> dict:
    """The envelope of a several-scorer ranking (docs/schemas/rank.schema.json, its `scorers` form)."""
    from prefcli import envelope

    per = {n: {"kind": r.kind, "higher_is_better": r.higher_is_better, "identity": dict(r.identity), "comparisons": r.comparisons,
               "no_answer": r.no_answer} for n, r in result.results.items()}  # fmt: skip
    results = {
        "ranking": result.rows(),
        "combine": {
            "method": result.method,
            "weights": dict(result.weights),
            "higher_is_better": result.higher_is_better,
        },
        "per_scorer": per,
        "total": result.total,
        "shown": len(result.ranked),
        "history_pairs": result.history_pairs,
        "ties": result.ties(),
        "notes": list(result.notes),
        "sheet": result.sheet,
    }
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in inputs.items()}
    return envelope.envelope("rank", results,
                             scorers={n: {"weights": r.weights, "revision": r.weights_id} for n, r in result.results.items()},
                             options=options, skipped=result.skipped,
                             provenance=envelope.provenance(scorer_identity={n: dict(r.identity) for n, r in result.results.items()}))  # fmt: skip
