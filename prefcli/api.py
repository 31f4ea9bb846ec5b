"""The Python API a notebook user starts from: `prefcli.load_scorer` and `prefcli.rank`.

Both are thin: `load_scorer` is the registry's loader (typed options, the
device rule), `rank` builds candidates and a history from whatever it is
given (a folder, files, PIL images) and ranks them through the same runner as
every command. See docs/api.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefcli.errors import HistoryError, ImageError

if TYPE_CHECKING:  # pragma: no cover
    from prefcli.multirank import MultiRankResult
    from prefcli.ranking import RankResult
    from prefcli.scorer import Scorer
    from prefcli.types import Candidate, UserHistory

ImagesLike = "str | os.PathLike | Image.Image | Iterable[str | os.PathLike | Image.Image]"


def load_scorer(
    name: str,
    weights: str | None = None,
    *,
    device: str | None = "auto",
    dtype: str | None = None,
    options: dict | None = None,
    **option_values: Any,
) -> Scorer:
    """A ready scorer by name (see `prefcli scorers`).

    `weights`: "tiny", a local path, "hf-hub:org/name" or an https URL
    (default: the scorer's official weights). `device`: "auto" (cuda, else
    mps, else cpu), "cpu", "cuda", ... `dtype`: None for the scorer's choice,
    or "fp32", "bf16", "fp16". Scorer options as a dict or keywords, checked
    against the scorer's typed options class (an unknown name or bad value is
    an OptionError naming it).
    """
    from prefcli import plugins

    return plugins.get_scorer_spec(name).load(
        weights, device=device, dtype=dtype, options={**(options or {}), **option_values}
    )


def _as_candidates(
    items: Any, what: str, prompt: str | None = None, keep_pixels: bool = False
) -> tuple[list[Candidate], list[tuple[str, str]]]:
    """Candidates from a folder, one file, a PIL image, or a list of files and PIL images (bad files skipped).

    Files are checked by their header only and decoded once, when scored; with
    `keep_pixels` (a history) they are decoded now, once, and keep their pixels.
    """
    from PIL import Image

    from prefcli import images
    from prefcli.types import Candidate

    if isinstance(items, (str, os.PathLike)) and Path(items).is_dir():
        from prefcli.ranking import scan_candidates

        good, bad = scan_candidates(items)
        for c in good:
            c.prompt = prompt
        return good, bad
    if isinstance(items, (str, os.PathLike, Image.Image)):
        items = [items]
    good: list[Candidate] = []
    bad: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        if isinstance(item, Image.Image):
            label = getattr(item, "filename", "") or f"<{what} image {i}>"
            try:
                images.check_image_size(*item.size, name=label)  # the same bounds as a file's
            except ImageError as e:
                bad.append((label, getattr(e, "reason", str(e))))
                continue
            c = Candidate.from_image(item, prompt=prompt)
            c.path = label
            good.append(c)
        elif isinstance(item, (str, os.PathLike)):
            try:
                data = images.read_image_file(item)
                c = Candidate(
                    image_id=images.content_id(data),
                    prompt=prompt,
                    path=str(item),
                    loader=lambda p=item: images.load_image(p, keep_mode=True),
                )
                if keep_pixels:
                    c._image, c._rgb = images.decode_kept(data, str(item))
                else:
                    images.check_image_bytes(data, name=str(item))
                good.append(c)
            except ImageError as e:
                bad.append((str(item), getattr(e, "reason", str(e))))
        else:
            raise TypeError(f"{what}: expected a folder, image files or PIL images, got {type(item).__name__}")
    if not good:
        raise ImageError(f"{what}: no readable image" + (f" ({len(bad)} could not be read)" if bad else ""))
    return good, bad


def _history(likes: Any, dislikes: Any) -> tuple[UserHistory, list[tuple[str, str]]]:
    from prefcli.types import HistoryPair, UserHistory

    dirs = all(isinstance(x, (str, os.PathLike)) and Path(x).is_dir() for x in (likes, dislikes))
    if dirs:
        from prefcli.data.folders import history_from_folders

        return history_from_folders(likes, dislikes)
    liked, bad_l = _as_candidates(likes, "likes", keep_pixels=True)
    disliked, bad_d = _as_candidates(dislikes, "dislikes", keep_pixels=True)
    if len(liked) != len(disliked):
        raise HistoryError(
            f"a history pairs each liked image with a disliked one: got {len(liked)} liked and {len(disliked)} disliked"
        )
    pairs = tuple(HistoryPair(liked=a, disliked=b) for a, b in zip(liked, disliked))
    return UserHistory(pairs=pairs), bad_l + bad_d


def rank(
    images: Any,
    *,
    scorer: str | Scorer | Sequence[str] | None = None,
    likes: Any = None,
    dislikes: Any = None,
    prompt: str | None = None,
    weights: str | dict[str, str] | None = None,
    device: str | None = "auto",
    dtype: str | None = None,
    top: int | None = None,
    batch_size: int = 16,
    options: dict | None = None,
    workers: int = 0,
    image_cache_mb: float | None = None,
    combine: str = "mean-rank",
    **option_values: Any,
) -> RankResult | MultiRankResult:
    """Rank images for one person, best first; returns a RankResult (`.ranked`, `.skipped`, `.rows()`).

    `images`: a folder, image files, PIL images, or a list mixing files and
    PIL images. `likes` / `dislikes`: the person's history, the same kinds
    (two folders are paired by sorted file name, lists by position). With a
    history the default scorer is blend (a general scorer plus clip-probe, weighted per
    person; docs/scorers/blend.md), else aesthetic. `prompt`: one
    prompt for every image (scorers such as clip need one). Files that cannot
    be read are skipped and listed in `.skipped`. `workers`: threads decoding
    the next batch of candidates while one is scored (0: in turn). `image_cache_mb`: decoded
    images the run may keep for reuse (default prefcli.image_cache.DEFAULT_MB; 0: none).
    `.stats` says what was decoded and where the seconds went.

    A list of scorers (`["pickscore", "hpsv2=2"]`, NAME=WEIGHT as `rank --scorer`)
    scores with each and orders by `combine` ("mean-rank" or "z-mean"); it
    returns a MultiRankResult (`.ranked` rows hold `.scores` and `.ranks` per
    scorer, `.results` each scorer's own RankResult). Then `weights` is one spec
    for every scorer or {name: spec}, and `options` is {name: {key: value}}.
    """
    from prefcli.harness.handle import ScorerHandle
    from prefcli.ranking import DEFAULT_PERSONAL_SCORER, DEFAULT_SCORER, rank_candidates

    if isinstance(scorer, (list, tuple)):
        return _rank_several(images, list(scorer), likes=likes, dislikes=dislikes, prompt=prompt, weights=weights, device=device,
                             dtype=dtype, top=top, batch_size=batch_size, options=options, workers=workers,
                             image_cache_mb=image_cache_mb, combine=combine,
                             option_values=option_values)  # fmt: skip

    personal = likes is not None or dislikes is not None
    if personal and (likes is None or dislikes is None):
        raise HistoryError("give both likes and dislikes")
    scorer = scorer or (DEFAULT_PERSONAL_SCORER if personal else DEFAULT_SCORER)
    if isinstance(scorer, str):  # resolved once, before any image is read
        scorer = ScorerHandle(scorer, weights, device=device, dtype=dtype, options={**(options or {}), **option_values})
    cands, bad = _as_candidates(images, "images", prompt=prompt)
    history, bad_h = _history(likes, dislikes) if personal else (None, [])
    return rank_candidates(
        cands,
        scorer=scorer,
        history=history,
        top=top,
        batch_size=batch_size,
        skipped=bad + bad_h,
        workers=workers,
        image_cache_mb=image_cache_mb,
    )


def _rank_several(
    images: Any,
    scorers: list[str],
    *,
    likes: Any,
    dislikes: Any,
    prompt: str | None,
    weights: Any,
    options: dict | None,
    option_values: dict,
    combine: str,
    top: int | None,
    **common: Any,
) -> MultiRankResult:
    from prefcli.errors import ConfigError
    from prefcli.multirank import parse_scorers, rank_candidates_multi

    chosen = parse_scorers(scorers)
    names = [n for n, _ in chosen]
    if option_values:
        raise ConfigError(
            f"with several scorers give options as options={{name: {{key: value}}}}, not as keywords ({', '.join(option_values)})"
        )
    unknown = sorted(set(options or {}) - set(names)) + sorted(
        set(weights if isinstance(weights, dict) else {}) - set(names)
    )
    if unknown:
        raise ConfigError(f"options/weights for {', '.join(unknown)}: not one of the scorers here ({', '.join(names)})")
    if likes is not None and dislikes is None or likes is None and dislikes is not None:
        raise HistoryError("give both likes and dislikes")
    cands, bad = _as_candidates(images, "images", prompt=prompt)
    history, bad_h = _history(likes, dislikes) if likes is not None else (None, [])
    per_weights = dict(weights) if isinstance(weights, dict) else {n: weights for n in names}
    return rank_candidates_multi(
        cands,
        scorers=chosen,
        method=combine,
        weights=per_weights,
        scorer_options=options or {},
        top=top,
        skipped=bad + bad_h,
        history=history,
        **common,
    )
