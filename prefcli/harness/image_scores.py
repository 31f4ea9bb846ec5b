"""Score a benchmark's saved images with several scorers: the scoring half of `bench generate`, and `bench images`.

Each scorer is loaded once (only when something is not in the score cache)
and runs through the harness's one scoring loop (prefcli.harness.runner): an
image is one task, so history-free scorers score in batches and a
personalized scorer conditions once per distinct history — the person's
(`bench images --history`) or each prompt's own (`bench generate`). Scores
land in the cache after every batch: an interrupted run resumes, a rerun
recomputes nothing. An image that does not decode scores NaN and is reported.

HPSv2 is scored as its benchmark reports it, 100 · cos (tgxs002/HPSv2,
hpsv2/evaluation.py line 141: `logits_per_image = image_features @ text_features.T * 100`,
line 143: its diagonal, one score per image).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefcli.errors import ConfigError, HistoryError, ImageError

if TYPE_CHECKING:  # pragma: no cover
    from prefcli.harness.cache import CacheDir
    from prefcli.types import Candidate, UserHistory

#: (scorer name, done, total) after each scored batch.
ProgressFn = Callable[[str, int, int], None]


@dataclass
class ImageItem:
    """One saved image of a benchmark: its group (a style, an arm), its name there, its prompt."""

    group: Any
    name: str
    path: Path
    prompt: str | None = None
    #: The history a personalized scorer is conditioned on for this image (None: the run's own).
    history: UserHistory | None = None


@dataclass
class ImageScores:
    """Per scorer, one score per item (items' order; NaN for an image that did not decode) and its identity."""

    items: list[ImageItem]
    scores: dict[str, list[float]]
    identities: dict[str, dict[str, Any]]
    skipped: list[tuple[str, str]]

    def values(self, name: str, group: Any) -> list[float]:
        """The scores of one group, unreadable images left out."""
        return [s for it, s in zip(self.items, self.scores[name]) if it.group == group and not math.isnan(s)]


def benchmark_options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A scorer's options on a benchmark: HPSv2 on the scale its tables report (100 · cos), whatever was asked."""
    return {**dict(options or {}), **({"percent": True} if name == "hpsv2" else {})}


def candidates_of(items: Sequence[ImageItem]) -> tuple[list[tuple[ImageItem, Candidate]], list[tuple[str, str]]]:
    """The items whose file is there and readable (checked by header), and (path, reason) for the rest."""
    import os

    from prefcli.types import Candidate

    good, bad = [], []
    for it in items:
        if not os.path.lexists(it.path):
            bad.append((str(it.path), "missing"))
            continue
        try:
            good.append((it, Candidate.from_path(str(it.path), prompt=it.prompt)))
        except ImageError as e:
            bad.append((str(it.path), getattr(e, "reason", None) or str(e)))
        except OSError as e:
            bad.append((str(it.path), e.strerror or type(e).__name__))
    return good, bad


def check_scorers(names: Sequence[str], *, history_given: bool) -> None:
    """Before any image is read: every name is a scorer that scores one image, and a personalized one has a history."""
    from prefcli.plugins import get_scorer_spec

    for name in names:
        spec = get_scorer_spec(name)
        if spec.pairwise:
            raise ConfigError(
                f"scorer {spec.name} is pairwise: it compares two images, it cannot score one image of a benchmark"
            )
        if spec.uses_history and not history_given:
            raise HistoryError(
                f"scorer {spec.name} is personalized: give --history DIR (a folder with liked/ and disliked/)"
            )
        missing = spec.missing_requirements()
        if missing:
            raise ConfigError(
                f"scorer {spec.name} needs {', '.join(missing)}"
                + (f" ({spec.install_hint})" if spec.install_hint else "")
            )


def score_images(
    items: Sequence[ImageItem],
    names: Sequence[str],
    *,
    weights: Mapping[str, str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    device: str = "cpu",
    dtype: str | None = None,
    history: UserHistory | None = None,
    cache: CacheDir | None = None,
    batch_size: int = 16,
    progress: ProgressFn | None = None,
) -> ImageScores:
    """Every item scored by every scorer in `names` (weights: {name or "*": spec}; options: {name: {key: value}}).

    `device` is already resolved (`prefcli.devices.resolve_device`), once by the command for all its scorers.
    """
    from prefcli.harness.runner import ScorerHandle, run_scorer
    from prefcli.plugins import get_scorer_spec
    from prefcli.types import RankTask, UserHistory

    items = list(items)
    check_scorers(names, history_given=history is not None or all(it.history is not None for it in items))
    good, skipped = candidates_of(items)
    if not good:
        first = f"; first: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise ImageError(f"no readable image among the {len(items)} the benchmark names{first}")
    scores: dict[str, list[float]] = {}
    identities: dict[str, dict[str, Any]] = {}
    unreadable: dict[str, str] = {}
    for name in names:
        spec = get_scorer_spec(name)
        opts = benchmark_options(spec.name, (options or {}).get(name, {}))
        w = (weights or {}).get(name, (weights or {}).get("*"))
        handle = ScorerHandle(spec, w, device=device, device_resolved=True, dtype=dtype, options=opts, cache=cache)
        tasks = [RankTask(task_id=f"{it.group}/{it.name}", candidates=[c], liked_index=0, protocol="bench-images",
                          history=(it.history or history or UserHistory()) if spec.uses_history else UserHistory())
                 for it, c in good]  # fmt: skip
        tick = (lambda done, total, _n=spec.name: progress(_n, done, total)) if progress else None
        records, stats = run_scorer(
            handle, tasks, cache=cache, batch_size=batch_size, skip_unreadable=True, on_progress=tick
        )
        unreadable.update(dict(stats.unreadable))
        by_path = {str(it.path): float(rec["scores"][0]) for (it, _), rec in zip(good, records)}
        scores[spec.name] = [by_path.get(str(it.path), math.nan) for it in items]
        identities[spec.name] = {"name": spec.name, "weights": handle.weights_id, "options": opts}
        loaded = handle.loaded
        del handle
        if loaded:  # one model at a time on the device; a run answered by the cache has nothing to free
            _free(device)
    skipped += [(p, r) for p, r in unreadable.items()]
    return ImageScores(items, scores, identities, skipped)


def _free(device: str) -> None:
    import gc

    gc.collect()
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
