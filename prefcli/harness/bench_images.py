"""`prefcli bench images DIR`: score a folder of generated images on a benchmark, by any generator.

Three layouts, each read the way its benchmark's own code reads it:

- HPSv2 (`--prompts hpsv2` or a folder of `<style>.json`): `DIR/<style>/<index:05d>.jpg`,
  the index into `<style>.json` (tgxs002/HPSv2, hpsv2/evaluation.py line 33:
  f'{idx:05d}.jpg'; line 128: one folder per style; line 34: a prompt without its
  image is left out). A style's score is the mean of its 80-image chunk means
  (line 148), the average the mean over all images (line 151).
- ImageReward (`--prompts imagereward` or its `benchmark-prompts.json`, a list of
  {"id", "prompt"}): `DIR/<id>_<k>.png`, k = 0, 1, ... (THUDM/ImageReward,
  test-benchmark.py line 83: f"{prompt_id}_{x}.png"); the score is the mean over
  prompts of each prompt's mean (lines 91 and 108).
- Any other set: a `{file: prompt}` JSON or a `file,prompt` CSV naming files
  inside DIR; the score is the mean over images.

It is the scoring half of `bench generate` (the same prefcli.harness.image_scores),
so on `bench generate`'s OUT/guided it prints the guided column of table 4.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefcli.errors import ConfigError, DataError, ImageError

OUT_BY = "prefcli bench images"


@dataclass
class BenchImagesConfig:
    folder: str
    prompts: str  # hpsv2 | imagereward | a path
    scorers: list[str]
    styles: list[str] = field(default_factory=list)
    limit: int | None = None
    history: str | None = None
    weights: dict[str, str] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    device: str = "cpu"
    dtype: str | None = None
    batch_size: int = 16
    cache_dir: str | None = None
    use_cache: bool = True


@dataclass
class Layout:
    kind: str  # "hpsv2" | "imagereward" | "files"
    items: list  # ImageItem, in the benchmark's order
    groups: list[str]  # styles, or ["all"]
    missing: dict[str, int]  # group -> prompts the benchmark names without an image here
    skipped: list[tuple[str, str]]
    source: str  # where the prompts came from
    per_prompt: list[str] | None = None  # ImageReward: each item's prompt id (its score is a mean of prompt means)


def read_layout(cfg: BenchImagesConfig) -> Layout:
    """The images the benchmark names in `cfg.folder`, with their prompts; fails before any model loads."""
    root = Path(cfg.folder).expanduser()
    if not root.is_dir():
        raise ImageError(f"{cfg.folder}: not a folder of generated images")
    if cfg.limit is not None and cfg.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {cfg.limit}")
    which = str(cfg.prompts)
    path = Path(which).expanduser()
    if which in ("hpsv2", "hf-hub") or path.is_dir():
        return _hpsv2(cfg, root, None if which in ("hpsv2", "hf-hub") else path)
    if cfg.styles:
        raise ConfigError("--styles: only the HPSv2 benchmark has styles (--prompts hpsv2 or a folder of <style>.json)")
    if which == "imagereward":
        return _imagereward(cfg, root, None)
    if not path.is_file():
        raise DataError(
            f"{which}: no such prompts file (give hpsv2, imagereward, a folder of HPSv2 <style>.json, "
            "ImageReward's benchmark-prompts.json or a {file: prompt} JSON/CSV)"
        )
    if path.suffix.lower() == ".json":
        from prefcli.jsonio import read_json

        data = read_json(path)
        if isinstance(data, list):
            return _imagereward(cfg, root, path)
    return _files(cfg, root, path)


def _hpsv2(cfg: BenchImagesConfig, root: Path, source: Path | None) -> Layout:
    from prefcli.data.prompts import HPSV2_STYLES, load_hpsv2_prompts
    from prefcli.harness.image_scores import ImageItem

    unknown = [s for s in cfg.styles if s not in HPSV2_STYLES]
    if unknown:
        raise ConfigError(f"--styles {', '.join(unknown)}: not an HPSv2 style; choose from {', '.join(HPSV2_STYLES)}")
    # Like hpsv2's evaluate, the styles are the folders there (line 118: os.listdir(img_path)).
    styles = list(cfg.styles) or [s for s in HPSV2_STYLES if (root / s).is_dir()]
    if not styles:
        raise ImageError(
            f"{root}: no HPSv2 style folder in it (expected {', '.join(HPSV2_STYLES)} holding <index:05d>.jpg)"
        )
    for s in styles:
        if not (root / s).is_dir():
            raise ImageError(f"{root / s}: no such style folder (--styles {s})")
    prompts = load_hpsv2_prompts(source, styles=styles, flag="--prompts")
    items, missing = [], {}
    for style in styles:
        listed = list(enumerate(prompts[style]))[: cfg.limit] if cfg.limit else list(enumerate(prompts[style]))
        for idx, prompt in listed:
            p = root / style / f"{idx:05d}.jpg"
            if os.path.lexists(p):
                items.append(ImageItem(style, f"{idx:05d}", p, prompt))
            else:
                missing[style] = missing.get(style, 0) + 1
    return Layout("hpsv2", items, styles, missing, [], "hf-hub:zhwang/HPDv2" if source is None else str(source))


def _imagereward(cfg: BenchImagesConfig, root: Path, source: Path | None) -> Layout:
    from prefcli.data.prompts import load_imagereward_prompts
    from prefcli.harness.image_scores import ImageItem
    from prefcli.paths import inside_root

    listed = load_imagereward_prompts(source)
    listed = listed[: cfg.limit] if cfg.limit else listed
    items, ids, skipped, missing = [], [], [], 0
    for entry in listed:
        k = 0
        while True:
            name = f"{entry['id']}_{k}.png"
            try:
                p = inside_root(root, name, f"image of prompt id {entry['id']!r}", root_name="the image folder")
            except DataError as e:
                skipped.append((str(root / name), str(e)))
                break
            if not os.path.lexists(p):
                break
            items.append(ImageItem("all", name, p, entry["prompt"]))
            ids.append(entry["id"])
            k += 1
        missing += k == 0
    return Layout(
        "imagereward",
        items,
        ["all"],
        {"all": missing} if missing else {},
        skipped,
        IMAGEREWARD_SOURCE if source is None else str(source),
        per_prompt=ids,
    )


IMAGEREWARD_SOURCE = "github:THUDM/ImageReward/benchmark/benchmark-prompts.json"


def _files(cfg: BenchImagesConfig, root: Path, source: Path) -> Layout:
    from prefcli.data.folders import load_prompts
    from prefcli.harness.image_scores import ImageItem
    from prefcli.paths import inside_root

    pm = load_prompts(source)  # through the bounded JSON reader; one line naming the file
    names = list(pm.prompts)[: cfg.limit] if cfg.limit else list(pm.prompts)
    if not names:
        raise DataError(f"{source}: names no image")
    items, skipped, missing = [], [], 0
    for name in names:
        try:
            p = inside_root(root, name, f"{source}: file", root_name="the image folder")
        except DataError as e:
            skipped.append((name, str(e)))
            continue
        if not os.path.lexists(p):
            missing += 1
            skipped.append((str(root / name), "missing"))
            continue
        items.append(ImageItem("all", name, p, pm.prompts[name] or None))
    return Layout("files", items, ["all"], {"all": missing} if missing else {}, skipped, str(source))


def run(cfg: BenchImagesConfig, *, progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Read the layout, score every image with every scorer (cached), and return the tables' data."""
    from prefcli.harness.image_scores import check_scorers, score_images

    if not cfg.scorers:
        raise ConfigError("--scorers: give at least one scorer, e.g. --scorers hpsv2,pickscore")
    check_scorers(cfg.scorers, history_given=cfg.history is not None)  # a typo fails before any image is read
    from prefcli.devices import resolve_device

    device = resolve_device(cfg.device)  # once, for every scorer
    layout = read_layout(cfg)
    if not layout.items:
        first = f"; first: {layout.skipped[0][0]}: {layout.skipped[0][1]}" if layout.skipped else ""
        raise ImageError(f"{cfg.folder}: none of the images the benchmark names is there ({layout.source}){first}")
    history, bad_history = None, []
    if cfg.history is not None:
        history, bad_history = _person(cfg.history)
    cache = None
    if cfg.use_cache:
        from prefcli.harness.cache import CacheDir

        cache = CacheDir(cfg.cache_dir)
    try:
        done = score_images(
            layout.items,
            cfg.scorers,
            weights=cfg.weights,
            options=cfg.options,
            device=device,
            dtype=cfg.dtype,
            history=history,
            cache=cache,
            batch_size=cfg.batch_size,
            progress=progress,
        )
    finally:
        if cache is not None:
            cache.close()
    return {
        "layout": layout,
        "done": done,
        "skipped": layout.skipped + bad_history + done.skipped,
        "history_pairs": len(history) if history is not None else 0,
        "config": {**cfg.__dict__, "device": device},
    }


def _person(folder: str) -> tuple[Any, list[tuple[str, str]]]:
    """A person's history from a folder holding liked/ and disliked/ (paired by sorted file name)."""
    from prefcli.data.folders import history_from_folders
    from prefcli.errors import HistoryError

    root = Path(folder).expanduser()
    likes, dislikes = root / "liked", root / "disliked"
    if not likes.is_dir() or not dislikes.is_dir():
        raise HistoryError(f"{folder}: --history needs a folder holding liked/ and disliked/ (this person's images)")
    return history_from_folders(likes, dislikes)


def group_label(layout: Layout, group: str) -> str:
    from prefcli.generate.bench import STYLE_LABELS  # table 4's style names, so both tables read alike

    if layout.kind == "hpsv2":
        return STYLE_LABELS.get(group, group)
    return {"imagereward": "ImageReward benchmark", "files": "all"}[layout.kind]


def summary_rows(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (scorer, group): {"scorer", "group", "label", "n", "missing", "value", "se"}; HPSv2 adds "average"."""
    from prefcli.generate.bench import (  # bench generate's aggregation (hpsv2/evaluation.py line 148)
        chunked_mean,
        std_error,
    )

    layout: Layout = data["layout"]
    done = data["done"]
    rows = []
    for name in done.scores:
        groups = list(layout.groups) + (["average"] if layout.kind == "hpsv2" else [])
        for g in groups:
            vals = [v for s in layout.groups for v in done.values(name, s)] if g == "average" else done.values(name, g)
            if not vals:
                value = None
            elif layout.kind == "hpsv2":
                value = sum(vals) / len(vals) if g == "average" else chunked_mean(vals)
            elif layout.kind == "imagereward":
                value = _mean_of_prompt_means(layout, done.scores[name])
            else:
                value = sum(vals) / len(vals)
            rows.append(
                {
                    "scorer": name,
                    "group": g,
                    "label": "Average" if g == "average" else group_label(layout, g),
                    "n": len(vals),
                    "missing": sum(layout.missing.values()) if g == "average" else layout.missing.get(g, 0),
                    "value": value,
                    "se": std_error(vals),
                }
            )
    return rows


def _mean_of_prompt_means(layout: Layout, scores: Sequence[float]) -> float | None:
    per: dict[str, list[float]] = {}
    for pid, s in zip(layout.per_prompt or [], scores):
        if not math.isnan(s):
            per.setdefault(pid, []).append(s)
    means = [sum(v) / len(v) for v in per.values()]
    return sum(means) / len(means) if means else None


def tables(data: Mapping[str, Any]) -> list:
    """One prefcli Table per scorer (group, images, score ± standard error), for every renderer (.md/.csv/.tex/.json)."""
    from prefcli.harness.tables import Column, Table

    layout: Layout = data["layout"]
    out = []
    by_scorer: dict[str, list[dict]] = {}
    for r in summary_rows(data):
        by_scorer.setdefault(r["scorer"], []).append(r)
    for name, rows in by_scorer.items():
        header = "HPSv2 (100·cos)" if name == "hpsv2" else name
        cols = [
            Column("group", "Style" if layout.kind == "hpsv2" else "Set"),
            Column("n", "Images"),
            Column(
                "score", f"{header} ↑" if _higher(name) else f"{header} ↓", pm=True, digits=2 if name == "hpsv2" else 4
            ),
        ]
        table_rows = [{"group": r["label"], "n": r["n"], "score": r["value"], "score_se": r["se"]} for r in rows]
        note = "± standard error over images"
        if layout.kind == "hpsv2":
            note += "; a style's score is the mean of its 80-image chunk means, the average is over all images (hpsv2's evaluate)"
        elif layout.kind == "imagereward":
            note += "; the score is the mean over prompts of each prompt's mean (ImageReward's test-benchmark.py)"
        out.append(Table(_table_name(name), f"{header} on {folder_name(data)}", cols, table_rows, note=note))
    return out


def _higher(name: str) -> bool:
    from prefcli.plugins import get_scorer_spec

    return get_scorer_spec(name).higher_is_better


def _table_name(scorer: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", scorer)


def folder_name(data: Mapping[str, Any]) -> str:
    return Path(data["config"]["folder"]).resolve().name or str(data["config"]["folder"])


def document(data: Mapping[str, Any]) -> dict[str, Any]:
    """`bench images`' document (prefcli/envelope.py; docs/schemas/bench-images.schema.json)."""
    from prefcli import envelope

    layout: Layout = data["layout"]
    done = data["done"]
    cfg = dict(data["config"])
    results = {
        "layout": layout.kind,
        "prompts": layout.source,
        "rows": summary_rows(data),
        "tables": [t.to_dict() for t in tables(data)],
        "images": [
            {
                "group": it.group,
                "name": it.name,
                "path": str(it.path),
                "prompt": it.prompt,
                "scores": {n: done.scores[n][i] for n in done.scores},
            }
            for i, it in enumerate(layout.items)
        ],
        "history_pairs": data["history_pairs"],
    }
    return envelope.envelope("bench images", results,
                             scorers={n: {"weights": (cfg.get("weights") or {}).get(n, (cfg.get("weights") or {}).get("*")),
                                          "revision": ident.get("weights")} for n, ident in done.identities.items()},
                             options=cfg, skipped=data["skipped"],
                             provenance=envelope.provenance(scorer_identity=dict(done.identities)))  # fmt: skip


def write_outputs(data: Mapping[str, Any], out: str | os.PathLike, *, overwrite: bool = False) -> list[Path]:
    """Every table as <scorer>.{md,csv,tex}, all of them in tables.md/.tex, and results.json; the folder replaced
    in one swap, files prefcli did not write there never replaced (prefcli.atomic.replace_dir)."""
    import shutil

    from prefcli import atomic, envelope

    out = Path(out)
    work = atomic.tmp_dir_beside(out)
    names: list[str] = []
    try:
        tabs = tables(data)
        for t in tabs:
            for ext, fmt in (("md", "markdown"), ("tex", "latex"), ("csv", "csv")):
                atomic.write_text(work / f"{t.name}.{ext}", t.render(fmt))
                names.append(f"{t.name}.{ext}")
        atomic.write_text(work / "tables.md", "\n".join(t.to_markdown() for t in tabs))
        atomic.write_text(work / "tables.tex", "\n".join(t.to_latex() for t in tabs))
        envelope.write(work / "results.json", document(data))
        names += ["tables.md", "tables.tex", "results.json"]
        atomic.replace_dir(work, out, by=OUT_BY, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return [out / n for n in names]
