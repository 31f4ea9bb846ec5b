"""Rank a folder of candidate images for one person.

This is what `prefcli rank` runs, kept free of the CLI so the demo, notebooks
and tests can call it directly: scan the folder (bad files are reported and
skipped), build the history from the likes/dislikes folders when the scorer is
personalized, and score through the harness's runner (condition once, score
in batches: the same loop as eval and bench), then order best first.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefcli.errors import HistoryError, ImageError, PrefcliError, bad_value

if TYPE_CHECKING:  # pragma: no cover
    from prefcli.harness.handle import ScorerHandle
    from prefcli.scorer import Scorer
    from prefcli.types import Candidate, UserHistory

#: Called after each scored batch with (done, total).
ProgressFn = Callable[[int, int], None]

DEFAULT_PERSONAL_SCORER = "blend"
DEFAULT_SCORER = "aesthetic"
#: The blend's general part when the user names none: PickScore (the strongest general scorer on
#: real users' choices, Pick-a-Pic) when every image has a prompt, else the prompt-free aesthetic.
DEFAULT_BLEND_GENERAL = ("pickscore", "aesthetic")


@dataclass
class RankedImage:
    rank: int
    score: float
    path: str
    image_id: str
    prompt: str | None = None
    #: What the scorer says about this candidate besides its score: a composite scorer's (blend) parts' scores,
    #: the w and its evidence; hpsv3's σ.
    extras: dict[str, Any] | None = None
    tie: bool = False  # the same score as a neighbour: the order between them is by path only

    def as_row(self) -> dict[str, Any]:
        row = {
            "rank": self.rank,
            "score": self.score,
            "tie": self.tie,
            "path": self.path,
            "image_id": self.image_id,
            "prompt": self.prompt,
        }
        if self.extras:
            row.update(self.extras)
        return row


@dataclass
class RankResult:
    """Everything `rank` reports: the ranked images, what was skipped and why, and notes."""

    ranked: list[RankedImage]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scorer: str = ""
    weights_id: str = ""
    history_pairs: int = 0
    total: int = 0  # readable candidates scored (ranked may be cut by `top`)
    sheet: str | None = None
    weights: str | None = None  # as given (None: the scorer's default)
    identity: dict[str, Any] = field(default_factory=dict)  # what produced the scores: options, dtype, device kind
    kind: str = "pointwise"
    higher_is_better: bool = True
    comparisons: int | None = None  # pairwise scorers: comparisons asked, and how many got no answer
    no_answer: int | None = None
    #: What the run computed and where its seconds went (prefcli.harness.runner.RunStats as a dict).
    stats: dict[str, Any] = field(default_factory=dict)

    def score_format(self) -> str:
        """One format for every score of this ranking: wins as integers, else enough decimals to tell them apart."""
        from prefcli.output import separating_digits

        scores = [r.score for r in self.ranked]
        if self.kind == "pairwise" and all(math.isnan(s) or float(2 * s).is_integer() for s in scores):
            return (
                ".0f" if all(math.isnan(s) or float(s).is_integer() for s in scores) else ".1f"
            )  # a tie is half a win
        return f".{separating_digits(scores)}f"

    def format_score(self, score: float) -> str:
        return "nan" if math.isnan(score) else format(score, self.score_format())

    def ties(self) -> int:
        return sum(1 for r in self.ranked if r.tie)

    def rows(self) -> list[dict[str, Any]]:
        return [r.as_row() for r in self.ranked]


def order(scores: Sequence[float], keys: Sequence[str], higher_is_better: bool = True) -> list[int]:
    """Indices best first: by score (NaN last), ties broken by key (the path), so output is deterministic."""

    def sort_key(i: int):
        s = scores[i]
        if s is None or (isinstance(s, float) and math.isnan(s)):
            return (1, 0.0, keys[i])
        return (0, -s if higher_is_better else s, keys[i])

    return sorted(range(len(scores)), key=sort_key)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def scan_candidates(
    folder: str | os.PathLike, *, recursive: bool = False, exclude: Sequence[str | os.PathLike] = ()
) -> tuple[list[Candidate], list[tuple[str, str]]]:
    """Readable candidates in a folder and the bad files; an empty or unreadable folder is an error.

    With `recursive`, images under any `exclude` folder (the history folders
    when they sit inside the candidates folder) are not candidates.
    """
    from prefcli.image_folder import scan_folder

    good, bad = scan_folder(folder, recursive=recursive)
    if recursive and exclude:
        ex = [Path(e) for e in exclude if e is not None and Path(e).is_dir()]
        good = [c for c in good if not any(_inside(Path(c.path), e) for e in ex)]
        bad = [b for b in bad if not any(_inside(Path(b[0]), e) for e in ex)]
    if not good:
        where = "or its subfolders " if recursive else ""
        if bad:
            first = f"; first: {bad[0][0]}: {bad[0][1]}"
            raise ImageError(
                f"{folder}: no readable image in the folder {where}({len(bad)} file(s) could not be read{first})"
            )
        raise ImageError(
            f"{folder}: no images found in the folder {where}(looked for .jpg, .jpeg, .png, .webp, .gif, .bmp, .tif"
            + ("" if recursive else "; use --recursive to include subfolders")
            + ")"
        )
    return good, bad


def as_handle(scorer: str | Scorer | ScorerHandle) -> ScorerHandle:
    """A ScorerHandle for what a caller gave: a handle as it is, a loaded Scorer wrapped, a name resolved
    (with its default weights, device auto and default options; build a ScorerHandle to choose them)."""
    from prefcli.harness.handle import ScorerHandle

    if isinstance(scorer, ScorerHandle):
        return scorer
    if isinstance(scorer, str):
        return ScorerHandle(scorer)
    return ScorerHandle.wrap(scorer)


def rank_folder(
    candidates: str | os.PathLike,
    *,
    scorer: str | Scorer | ScorerHandle,
    likes: str | os.PathLike | None = None,
    dislikes: str | os.PathLike | None = None,
    pairs: str | os.PathLike | None = None,
    prompt: str | None = None,
    prompts=None,
    history_prompts=None,
    history: UserHistory | None = None,
    batch_size: int = 16,
    top: int | None = None,
    recursive: bool = False,
    sheet: str | os.PathLike | None = None,
    sheet_title: str | None = None,
    sheet_options: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
    workers: int = 0,
    image_cache_mb: float | None = None,
) -> RankResult:
    """Score every image in `candidates` with `scorer` and return them best first.

    `scorer` is a `prefcli.harness.handle.ScorerHandle` (a name with its weights, device, dtype and options,
    resolved and validated once, when it is made: before any image is read; loaded only to score), a
    registered name (its defaults) or an already loaded Scorer. Personalized scorers need a
    history: `history`, or `likes` + `dislikes` folders (optionally paired by
    `pairs`); history-free scorers ignore them and a note says so. `prompt`
    applies to every candidate; `prompts` (a prompts file or {file: prompt})
    names one per file and is also consulted for history images, after
    `history_prompts`. Ties are broken by path. `top` keeps the best K. With
    `sheet`, a contact sheet of the ranked images is written there;
    `sheet_options` are `thumb`, `columns`, and `history` / `prompt` (True:
    show the history strip / the prompt on it).
    """
    from prefcli.data.folders import as_prompt_map, history_from_folders

    if top is not None and top < 1:
        raise bad_value("top", top, "must be at least 1")
    if batch_size < 1:
        raise bad_value("batch_size", batch_size, "must be at least 1")
    if prompt is not None and prompts is not None:
        raise PrefcliError(
            "give either prompt= (one prompt for all) or prompts= (one per file), not both",
            cli="give either --prompt TEXT (one prompt for all) or --prompts FILE (one per file), not both",
        )
    if sheet is not None:
        from prefcli.sheet import sheet_format

        sheet_format(sheet)  # a bad suffix fails now, not after scoring

    handle = as_handle(scorer)  # a name: resolved here, once (a bad name fails before anything is read)
    spec, name = handle.spec, handle.name
    uses_history = spec.uses_history
    needs_prompt = "prompt" in spec.needs

    notes: list[str] = []
    skipped: list[tuple[str, str]] = []
    prompt_map = as_prompt_map(prompts)

    # Check everything the user gave before loading a model: fail fast.
    good, bad = scan_candidates(candidates, recursive=recursive, exclude=[likes, dislikes])
    skipped.extend(bad)
    for c in good:
        c.prompt = prompt if prompt is not None else (prompt_map.get(c.path) if prompt_map is not None else None)
    if needs_prompt:
        missing = [Path(c.path).name for c in good if not c.prompt]
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise PrefcliError(
                f"scorer {name} needs a prompt for every image; give prompt= or prompts= (no prompt for {shown})",
                cli=f"scorer {name} needs a prompt for every image; give --prompt TEXT or --prompts FILE "
                f"(no prompt for {shown})",
            )

    history_given = history is not None or likes is not None or dislikes is not None or pairs is not None
    if uses_history:
        if history is None:
            if pairs is None and (likes is None or dislikes is None):
                raise HistoryError(
                    f"scorer {name} is personalized: give likes= and dislikes= (the person's liked and disliked images)",
                    cli=f"scorer {name} is personalized: give --likes DIR and --dislikes DIR",
                )
            from prefcli.data.folders import PromptMap

            hist_map = PromptMap.chain(as_prompt_map(history_prompts), prompt_map)
            history, bad_history = history_from_folders(likes, dislikes, hist_map, pairs=pairs)
            skipped.extend(bad_history)
    else:
        if history_given:
            notes.append(f"scorer {name} uses no history; --likes/--dislikes are ignored")
        history = None

    result = rank_candidates(
        good,
        scorer=handle,
        history=history,
        batch_size=batch_size,
        top=top,
        progress=progress,
        skipped=skipped,
        notes=notes,
        workers=workers,
        image_cache_mb=image_cache_mb,
    )
    if sheet is not None:
        # The title names what scored the sheet: one made with random `tiny` weights must say so.
        title = f"{sheet_title or 'prefcli rank · ' + Path(candidates).resolve().name} · {name} · weights {short_id(result.weights_id) or '?'}"
        opts = dict(sheet_options or {})
        shown_history = history if opts.pop("history", False) else None
        shown_prompt = prompt if opts.pop("prompt", False) else None
        result.sheet = str(
            write_rank_sheet(
                result.ranked,
                sheet,
                title=title,
                history=shown_history,
                prompt=shown_prompt,
                score_format=result.score_format(),
                **opts,
            )
        )
    return result


def default_blend_general(candidates: Sequence[Candidate]) -> tuple[str, str]:
    """The blend's general part when none is named, and why: pickscore if every image (candidates and
    history, whose images the blend's general part also scores) has a prompt and pickscore is
    installed, else aesthetic (which needs no prompt)."""
    from prefcli.plugins import get_scorer_spec

    with_prompts, without = DEFAULT_BLEND_GENERAL
    try:
        ready = not get_scorer_spec(with_prompts).missing_requirements()
    except PrefcliError:
        ready = False
    if not ready:
        return without, f"{with_prompts} is not installed"
    if candidates and all(c.prompt for c in candidates):
        return with_prompts, "every image has a prompt"
    return without, "not every candidate and history image has a prompt"


def short_id(weights_id: str) -> str:
    """A weights id fit for a picture's title: content hashes cut to 12 hex digits (the JSON keeps them whole)."""
    import re

    return re.sub(r"\b([0-9a-f]{12})[0-9a-f]{28,}\b", r"\1…", weights_id or "")


def rank_candidates(
    candidates: Sequence[Candidate],
    *,
    scorer: str | Scorer | ScorerHandle,
    history: UserHistory | None = None,
    batch_size: int = 16,
    top: int | None = None,
    progress: ProgressFn | None = None,
    skipped: Sequence[tuple[str, str]] = (),
    notes: Sequence[str] = (),
    workers: int = 0,
    image_cache_mb: float | None = None,
) -> RankResult:
    """Score `candidates` through the harness's runner (the one scoring loop) and order them best first.

    `scorer` is a ScorerHandle (see `rank_folder`), a registered name or a loaded Scorer. A personalized
    scorer conditions once on `history`; a history-free one ignores it. Ties are broken by path.
    """
    from prefcli.harness.runner import run_scorer
    from prefcli.types import RankTask, UserHistory

    if top is not None and top < 1:
        raise bad_value("top", top, "must be at least 1")
    notes = list(notes)
    handle = as_handle(scorer)
    if handle.name == DEFAULT_PERSONAL_SCORER and not handle.loaded and "general" not in handle.explicit:
        general, why = default_blend_general(list(candidates) + (history.images() if history is not None else []))
        handle = handle.with_options(general=general)
        notes.append(
            f"blend of {general} (general: {why}) and {handle.options.personal} (personal); -o general NAME chooses another"
        )
    spec, name = handle.spec, handle.name
    if spec.uses_history:
        if history is None or len(history) == 0:
            raise HistoryError(
                f"scorer {name} is personalized: give likes= and dislikes= (the person's liked and disliked images)",
                cli=f"scorer {name} is personalized: give --likes DIR and --dislikes DIR",
            )
    else:
        history = None
    if spec.pairwise:
        n = len(candidates)
        notes.append(
            f"scorer {name} is pairwise: ranked by round-robin wins over {n * (n - 1) // 2} comparison(s); score = wins out of {n - 1}"
        )
    task = RankTask(
        task_id="rank", candidates=list(candidates), liked_index=0, history=history or UserHistory(), protocol="rank"
    )
    records, stats = run_scorer(
        handle,
        [task],
        cache=None,
        batch_size=batch_size,
        skip_unreadable=True,
        workers=workers,
        image_cache_mb=image_cache_mb,
        on_progress=progress or (lambda done, total: None),
    )
    scores = [float(v) for v in records[0]["scores"]]
    extras = records[0].get("extras") or handle.scorer.candidate_extras(candidates)
    if records[0].get("note"):
        notes.append(records[0]["note"])
    if stats.unreadable:
        # Found when decoded (a scan reads headers only): skipped and reported as a scan would.
        reason = dict(stats.unreadable)
        why = {c.image_id: reason[c.path or c.image_id] for c in candidates if (c.path or c.image_id) in reason}
        skipped = list(skipped) + [(c.path or c.image_id, why[c.image_id]) for c in candidates if c.image_id in why]
        keep = [i for i, c in enumerate(candidates) if c.image_id not in why]
        if not keep:
            first = stats.unreadable[0]
            raise ImageError(
                f"no readable image among the {len(candidates)} candidate(s) "
                f"({len(stats.unreadable)} could not be decoded; first: {first[0]}: {first[1]})"
            )
        candidates = [candidates[i] for i in keep]
        scores = [scores[i] for i in keep]
        extras = [extras[i] for i in keep]
    comps = records[0].get("comparisons") if spec.pairwise else None
    no_answer = None if comps is None else sum(1 for c in comps if c.get("winner") is None)
    if no_answer:
        notes.append(f"{no_answer} of {len(comps)} comparison(s) got no answer from {name} (no win to either image)")

    keys = [c.path or c.image_id for c in candidates]
    full = order(scores, keys, higher_is_better=spec.higher_is_better)
    tied = tied_positions(scores, full)
    idx = full[:top] if top is not None else full
    ranked = [
        RankedImage(
            rank=r,
            score=scores[i],
            path=candidates[i].path or "",
            image_id=candidates[i].image_id,
            prompt=candidates[i].prompt,
            extras=extras[i],
            tie=i in tied,
        )
        for r, i in enumerate(idx, start=1)
    ]
    return RankResult(
        weights=handle.weights,
        identity=dict(handle.identity),
        kind=spec.kind,
        higher_is_better=spec.higher_is_better,
        comparisons=None if comps is None else len(comps),
        no_answer=no_answer,
        ranked=ranked,
        skipped=list(skipped),
        notes=notes,
        scorer=name,
        weights_id=handle.weights_id,
        history_pairs=len(history) if history is not None else 0,
        total=len(candidates),
        stats={k: v for k, v in stats.as_dict().items() if k != "unreadable"},  # the skipped files are listed apart
    )


def tied_positions(scores: Sequence[float], idx: Sequence[int]) -> set[int]:
    """Indices whose score equals a neighbour's in the order `idx` (NaN ties with NaN)."""
    same = lambda a, b: a == b or (math.isnan(a) and math.isnan(b))  # noqa: E731
    out: set[int] = set()
    for i, j in zip(idx, idx[1:]):
        if same(scores[i], scores[j]):
            out.update((i, j))
    return out


def format_score(score: float) -> str:
    if math.isnan(score):
        return "nan"
    return f"{score:.4g}"


def write_rank_sheet(
    ranked: Sequence[RankedImage],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    thumb: int = 192,
    columns: int | None = None,
    history: UserHistory | None = None,
    prompt: str | None = None,
    score_format: str | None = None,
    extra_lines: Sequence[str] | None = None,
) -> Path:
    """A contact sheet of ranked images: thumbnails in rank order captioned '#rank  score' and the file name.

    With `history`, a strip of the person's liked and disliked images sits above the grid; with
    `prompt`, the prompt is a line under the title. `score_format` (a format spec such as ".6f")
    gives every score on the sheet one format; a tie is marked '#3='. `extra_lines` (one per image)
    go between the score and the file name (several scorers' numbers, prefcli.multirank).
    """
    from prefcli import images
    from prefcli.sheet import contact_sheet

    items = []
    for k, r in enumerate(ranked):
        image = images.load_image(r.path)
        image.thumbnail((thumb * 2, thumb * 2))  # keep memory small for big folders of big images
        shown = format_score(r.score) if score_format is None or math.isnan(r.score) else format(r.score, score_format)
        extra = f"{extra_lines[k]}\n" if extra_lines is not None else ""
        items.append((image, f"#{r.rank}{'=' if r.tie else ''}  {shown}\n{extra}{Path(r.path).name}"))
    strip = []
    for p in history.pairs if history is not None else []:
        for cand, liked in ((p.liked, True), (p.disliked, False)):
            im = cand.image.copy()
            im.thumbnail((thumb, thumb))
            strip.append((im, liked))
    return contact_sheet(
        items,
        path,
        thumb=thumb,
        columns=columns,
        title=title,
        subtitle=f"prompt: {prompt}" if prompt else None,
        history=strip or None,
    )
