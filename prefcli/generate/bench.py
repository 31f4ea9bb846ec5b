"""`prefcli bench generate`: the paper's table 4, HPSv2 scores of personalized generation.

Protocol (the paper's section 4.2): for each HPSv2 benchmark prompt, the user's
history is 3 FLUX-schnell images (liked) and 3 SD-Turbo images (disliked) of
that prompt; the target is an SD-Turbo image optimized with the preference
model (weight 0.75, 30 iterations). The table reports the HPSv2 score per style
and on average, for the unguided image of the same seed and the guided one.

Layout and scores follow hpsv2/evaluation.py (`evaluate_benchmark`), so its own
`hpsv2.evaluate(OUT/guided)` reads the same folders:
  OUT/unguided/<style>/<index:05d>.jpg and OUT/guided/<style>/<index:05d>.jpg
  (line 33: f'{idx:05d}.jpg', the index into <style>.json; line 128: one folder per style)
  score = 100 · cos(image, prompt) (line 141);
  a style's score = the mean of its 80-image chunk means (line 148), the
  average = the mean over all images (line 151).
Beside them: OUT/history/<style>/<index:05d>/{liked,disliked}-<k>.jpg, the
sidecars OUT/runs/<style>/<index:05d>.json (one per prompt, ReNO's log), and
the tables table4.{md,csv,json,tex}. A prompt whose sidecar says it finished with
the same settings is not generated again; history images already on disk are
reused when their manifest (history.json beside them) says they were made
from the same prompt by the same generators. What keys the reuse is the
request (`request()`: the prompt, every generator with its revision, the
rewards with their weights and weights identities, options, steps, lr, seed
and dtype), checked for every prompt before anything is made; an image made
under another request is refused with one line, never reported under the new
settings. A file at an output name that prefcli did not write (no sidecar or
manifest lists it) is never replaced without --overwrite.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefcli import messages
from prefcli.errors import ConfigError
from prefcli.generate.run import save_png

STYLE_LABELS = {"anime": "Animation", "concept-art": "Concept Art", "paintings": "Painting", "photo": "Photo"}
CHUNK = 80  # hpsv2/evaluation.py line 148
N_HISTORY = 3  # liked and disliked images per prompt
HISTORY_SEED = 1000  # history images use seeds 1000, 1001, 1002: never the target's seed


@dataclass
class BenchGenerateConfig:
    prompts: str | None = None  # a folder of <style>.json, or None / "hf-hub" for zhwang/HPDv2
    styles: list[str] = field(default_factory=list)
    limit: int | None = None
    out: str = "bench-generate"
    model: str = "sd-turbo"
    liked_model: str = "flux-schnell"
    disliked_model: str = "sd-turbo"
    rewards: list[tuple[str, float]] = field(default_factory=lambda: [("preftoken", 0.75)])
    steps: int = 30
    lr: float = 5.0
    seed: int = 0
    judges: list[str] = field(default_factory=list)
    weights: dict[str, str] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    device: str = "cpu"
    dtype: str | None = None
    overwrite: bool = False


HISTORY_MANIFEST = "history.json"


def _generator_identity(model: str) -> str:
    """A generator's revision without loading it: a local folder's content revision, a hub id's cached commit."""
    from prefcli import weights as W
    from prefcli.generate.pipelines import GENERATORS, folder_revision

    p = Path(model).expanduser()
    if p.is_dir():
        return f"folder:{folder_revision(p)}"
    return W.identity(GENERATORS.get(model, model))


def history_request(cfg: BenchGenerateConfig, prompt: str) -> dict[str, Any]:
    """What decides a prompt's history images."""
    return {
        "prompt": prompt,
        "liked_model": [cfg.liked_model, _generator_identity(cfg.liked_model)],
        "disliked_model": [cfg.disliked_model, _generator_identity(cfg.disliked_model)],
        "dtype": cfg.dtype,
        "seeds": [HISTORY_SEED + k for k in range(N_HISTORY)],
    }


def request(cfg: BenchGenerateConfig, prompt: str) -> dict[str, Any]:
    """Everything that decides a prompt's guided and unguided images, identified without loading a model
    (weights by content or cached commit, as the score cache's identity does)."""
    from prefcli import weights as W

    return {
        **history_request(cfg, prompt),
        "model": [cfg.model, _generator_identity(cfg.model)],
        "rewards": [[n, float(w)] for n, w in cfg.rewards],
        "weights": {k: W.identity(v) for k, v in sorted(cfg.weights.items())},
        "options": {k: cfg.options[k] for k in sorted(cfg.options) if cfg.options[k]},
        "steps": cfg.steps,
        "lr": cfg.lr,
        "seed": cfg.seed,
    }


def _canon(value: Any) -> str:
    """One text per value as its JSON file holds it (tuples as lists, keys sorted), for comparing requests."""
    return json.dumps(value, sort_keys=True, default=str)


def _differs(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = [
        k
        for k in new
        if json.dumps(old.get(k), sort_keys=True, default=str) != json.dumps(new[k], sort_keys=True, default=str)
    ]
    return ", ".join(
        f"{k} {json.dumps(old.get(k), default=str)} there, {json.dumps(new[k], default=str)} now" for k in keys[:3]
    )


def _check_item(cfg: BenchGenerateConfig, out: Path, item: tuple[str, int, str]) -> bool:
    """Whether the prompt's images are finished under this very request (reused as they are); ConfigError
    when they were made under another one, or when a file at its output names is not prefcli's."""
    from prefcli.generate.run import read_sidecar, refuse_foreign

    paths = _paths(out, item[0], item[1])
    old = read_sidecar(paths["sidecar"])
    refuse_foreign([paths["image"], paths["unguided"]], paths["sidecar"], old, cfg.overwrite)
    if not old or not old.get("done"):
        return False
    want = request(cfg, item[2])
    have = old.get("request")
    if _canon(have) != _canon(want):
        why = _differs(have, want) if isinstance(have, dict) else "it records no request (an earlier prefcli made it)"
        raise ConfigError(
            f"{paths['sidecar']}: its images were made under other settings ({why}); choose another --out "
            f"to keep both, or rerun with the settings that made them"
        )
    return paths["image"].is_file() and paths["unguided"].is_file()


def _history_todo(cfg: BenchGenerateConfig, out: Path, item: tuple[str, int, str]) -> dict[str, list[Path]]:
    """The history images of a prompt still to make ({"liked": [...], "disliked": [...]}); ConfigError for a file
    there that prefcli did not write. Images made for another prompt or by other generators are made again."""
    import os

    from prefcli.atomic import write_text
    from prefcli.jsonio import read_json

    liked, disliked = _history_paths(out, item[0], item[1])
    manifest = liked[0].parent / HISTORY_MANIFEST
    want = history_request(cfg, item[2])
    old: dict[str, Any] | None = {}
    if os.path.lexists(manifest):
        try:
            old = read_json(manifest, error=ConfigError, expect=dict)
        except ConfigError:
            old = None
    ours = set(old.get("files", [])) if isinstance(old, dict) and isinstance(old.get("files"), list) else set()
    foreign = ([manifest] if old is None else []) + [
        p for p in liked + disliked if os.path.lexists(p) and p.name not in ours
    ]
    if foreign and not cfg.overwrite:
        raise ConfigError(
            f"{foreign[0]}: exists and was not written by prefcli (no {HISTORY_MANIFEST} beside it lists it); "
            f"refusing to replace it: choose another --out, or pass --overwrite to replace it"
        )
    same = isinstance(old, dict) and _canon(old.get("request")) == _canon(want) and not foreign
    if not same:  # claimed before anything is made, so that a killed run's images are known as prefcli's
        write_text(
            manifest,
            json.dumps(
                {"by": "prefcli bench generate", "request": want, "files": [p.name for p in liked + disliked]}, indent=1
            )
            + "\n",
        )
    return {
        "liked": [p for p in liked if not (same and p.is_file())],
        "disliked": [p for p in disliked if not (same and p.is_file())],
    }


TABLES = tuple(f"table4.{suffix}" for suffix in ("md", "csv", "json", "tex"))


def _check_tables(out: Path, overwrite: bool) -> None:
    """The tables are prefcli's when its marker in OUT lists them (or, written by an earlier prefcli
    without one, when OUT/runs/ holds its sidecars); any other file at their names is not replaced."""
    import os

    from prefcli.atomic import written_by_prefcli
    from prefcli.generate.run import read_sidecar

    ours = written_by_prefcli(out)
    if ours is None:
        legacy = next(iter(sorted((out / "runs").glob("*/*.json"))), None) if (out / "runs").is_dir() else None
        ours = set(TABLES) if legacy is not None and read_sidecar(legacy) else set()
    foreign = [out / t for t in TABLES if os.path.lexists(out / t) and t not in ours]
    if foreign and not overwrite:
        raise ConfigError(
            f"{foreign[0]}: exists and was not written by prefcli; refusing to replace it: choose another --out, "
            f"or pass --overwrite to replace it"
        )


def chunked_mean(scores: list[float], chunk: int = CHUNK) -> float:
    """hpsv2/evaluation.py line 148: the mean of the means of consecutive `chunk`-image slices."""
    means = [sum(scores[i : i + chunk]) / len(scores[i : i + chunk]) for i in range(0, len(scores), chunk)]
    return sum(means) / len(means)


def std_error(scores: list[float]) -> float | None:
    n = len(scores)
    if n < 2:
        return None
    m = sum(scores) / n
    return math.sqrt(sum((s - m) ** 2 for s in scores) / (n - 1) / n)


def _prompts(cfg: BenchGenerateConfig) -> dict[str, list[tuple[int, str]]]:
    from prefcli.data.prompts import load_hpsv2_prompts

    if cfg.limit is not None and cfg.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {cfg.limit}")
    sets = load_hpsv2_prompts(cfg.prompts, styles=cfg.styles or None, flag="--prompts")
    return {s: list(enumerate(ps))[: cfg.limit] if cfg.limit else list(enumerate(ps)) for s, ps in sets.items()}


def _history_paths(out: Path, style: str, idx: int) -> tuple[list[Path], list[Path]]:
    d = out / "history" / style / f"{idx:05d}"
    return [d / f"liked-{k}.jpg" for k in range(N_HISTORY)], [d / f"disliked-{k}.jpg" for k in range(N_HISTORY)]


def _make_history(
    gen: Any,
    items: list[tuple[str, int, str]],
    out: Path,
    which: str,
    tick: Callable[[], None],
    todo: dict[tuple[str, int], dict[str, list[Path]]],
) -> int:
    """Sample the liked (or disliked) history images `todo` lists with `gen`; returns how many were made."""
    made = 0
    for style, idx, prompt in items:
        liked, disliked = _history_paths(out, style, idx)
        for k, path in enumerate(liked if which == "liked" else disliked):
            if path in todo[(style, idx)][which]:
                save_png(gen.sample(prompt, HISTORY_SEED + k).convert("RGB"), path)  # .jpg: JPEG
                made += 1
        tick()
    return made


def _history(out: Path, style: str, idx: int, prompt: str) -> Any:
    from prefcli.types import Candidate, HistoryPair, UserHistory

    liked, disliked = _history_paths(out, style, idx)
    pairs = tuple(
        HistoryPair(
            Candidate.from_path(str(lk), prompt=prompt),
            Candidate.from_path(str(dk), prompt=prompt),
            prompt=prompt,
            pair_id=f"{style}-{idx}-{k}",
        )
        for k, (lk, dk) in enumerate(zip(liked, disliked))
    )
    return UserHistory(pairs=pairs, user_id=f"{style}-{idx:05d}")


@messages.on_purpose_when("history_length")  # the protocol's history is 3 pairs, whatever the model was trained with
def run(cfg: BenchGenerateConfig, *, progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Generate what is missing, score every image, return the table's data (and write it)."""
    from prefcli.generate import run as grun
    from prefcli.generate.pipelines import load_generator
    from prefcli.generate.rewards import load_scorers

    prompts = _prompts(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    items = [(s, i, p) for s, ps in prompts.items() for i, p in ps]
    names = [n for n, _ in cfg.rewards]
    if set(names) & set(cfg.judges):
        raise ConfigError(
            f"--judges {', '.join(sorted(set(names) & set(cfg.judges)))}: a judge must be held out, but it is also a --reward"
        )
    gcfg = grun.GenerateConfig(prompt="", model=cfg.model, rewards=list(cfg.rewards), preset="paper", steps=cfg.steps, lr=cfg.lr,
                               device=cfg.device, dtype=cfg.dtype, weights=cfg.weights, options=cfg.options, seed=cfg.seed,
                               overwrite=cfg.overwrite)  # fmt: skip
    total = len(items)
    counts = {"liked": 0, "disliked": 0, "optimized": 0, "kept": 0}

    def tick_for(phase: str) -> Callable[[], None]:
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if progress:
                progress(phase, done, total)

        return tick

    # Every prompt checked before anything is made: a result of other settings is refused, never reused.
    _check_tables(out, cfg.overwrite)
    finished = {(s, i) for s, i, p in items if _check_item(cfg, out, (s, i, p))}
    hist = {(s, i): _history_todo(cfg, out, (s, i, p)) for s, i, p in items}
    # Phase 1: the liked history (FLUX-schnell) for every prompt, then free that generator.
    missing = [it for it in items if hist[it[:2]]["liked"]]
    if missing:
        gen = load_generator(cfg.liked_model, device=cfg.device, dtype=cfg.dtype)
        counts["liked"] = _make_history(
            gen, missing, out, "liked", tick_for(f"making liked history with {cfg.liked_model}"), hist
        )
        del gen
        _free(cfg.device)
    # Phase 2: disliked history and the optimized target, one prompt at a time.
    todo = [it for it in items if it[:2] not in finished]
    if todo:
        target = load_generator(cfg.model, device=cfg.device, dtype=cfg.dtype)
        dis = target if cfg.disliked_model == cfg.model else None
        need_dis = [it for it in todo if hist[it[:2]]["disliked"]]
        if need_dis:
            dis = dis or load_generator(cfg.disliked_model, device=cfg.device, dtype=cfg.dtype)
            counts["disliked"] = _make_history(
                dis, need_dis, out, "disliked", tick_for(f"making disliked history with {cfg.disliked_model}"), hist
            )
        if dis is not target:
            del dis
            _free(cfg.device)
        loaded = None
        tick = tick_for(f"optimizing {cfg.model} images")
        for style, idx, prompt in todo:
            history = _history(out, style, idx, prompt)
            if loaded is None:
                loaded = load_scorers(names, weights=cfg.weights, options=cfg.options, device=cfg.device, history=history,
                                      need_differentiable=True, role="reward")  # fmt: skip
                for ls, (_, w) in zip(loaded, cfg.rewards):
                    ls.weight = w
            else:
                for ls in loaded:  # a new user per prompt: condition again, once
                    ls.state = ls.scorer.condition(
                        history if ls.scorer.spec is None or ls.scorer.spec.uses_history else None
                    )
            session = grun.Session(target, loaded, [], history, cfg.device)
            _, fresh = grun.generate_seed(session, gcfg, prompt, cfg.seed, out / "runs" / style, f"{idx:05d}", paths=_paths(out, style, idx),
                                          extra={"style": style, "index": idx, "request": request(cfg, prompt)})  # fmt: skip
            counts["optimized" if fresh else "kept"] += 1
            tick()
        del target
        _free(cfg.device)
    counts["kept"] += total - len(todo)
    data = score(cfg, prompts, out)
    data["counts"] = counts
    write_tables(data, out)
    return data


def _paths(out: Path, style: str, idx: int) -> dict[str, Path]:
    return {"image": out / "guided" / style / f"{idx:05d}.jpg", "unguided": out / "unguided" / style / f"{idx:05d}.jpg",
            "sidecar": out / "runs" / style / f"{idx:05d}.json"}  # fmt: skip


def _free(device: str) -> None:
    import gc

    gc.collect()
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def score(cfg: BenchGenerateConfig, prompts: dict[str, list[tuple[int, str]]], out: Path) -> dict[str, Any]:
    """HPSv2 (100 · cos, v2.1 by default) and every judge on the saved JPEGs, as hpsv2's evaluation reads them.

    The scoring is `bench images`' (prefcli.harness.image_scores); a personalized judge is conditioned
    on each prompt's own history."""
    from prefcli.harness.image_scores import ImageItem, score_images
    from prefcli.plugins import get_scorer_spec

    names = ["hpsv2"] + [j for j in cfg.judges if j != "hpsv2"]
    personal = any(get_scorer_spec(n).uses_history for n in names)
    items = [ImageItem((arm, style), f"{i:05d}", out / arm / style / f"{i:05d}.jpg", p,
                       history=_history(out, style, i, p) if personal else None)
             for arm in ("unguided", "guided") for style, ps in prompts.items() for i, p in ps]  # fmt: skip
    done = score_images(items, names, weights=cfg.weights, options=cfg.options, device=cfg.device)
    if done.skipped:
        path, reason = done.skipped[0]
        raise ConfigError(
            f"{path}: {reason}; a generated image of this benchmark cannot be scored (delete it to make it again)"
        )
    scores = {name: {arm: {style: done.values(name, (arm, style)) for style in prompts} for arm in ("unguided", "guided")}
              for name in done.scores}  # fmt: skip
    config = {k: v for k, v in cfg.__dict__.items()}
    return {
        "styles": list(prompts),
        "scores": scores,
        "metrics": done.identities,
        "n": {s: len(ps) for s, ps in prompts.items()},
        "config": config,
    }


def table_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    styles = data["styles"]
    for style in styles + ["average"]:
        row: dict[str, Any] = {"style": STYLE_LABELS.get(style, style) if style != "average" else "Average"}
        row["n"] = data["n"][style] if style != "average" else sum(data["n"].values())
        for metric, arms in data["scores"].items():
            for arm in ("unguided", "guided"):
                vals = arms[arm][style] if style != "average" else [v for s in styles for v in arms[arm][s]]
                value = chunked_mean(vals) if style != "average" else sum(vals) / len(vals)
                row[f"{metric} {arm}"] = value
                row[f"{metric} {arm} se"] = std_error(vals)
        rows.append(row)
    return rows


def long_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Table 4 as one row per (style, metric, arm): {"style", "n", "metric", "arm", "value", "se"} (styles plus "average")."""
    out = []
    for r, style in zip(table_rows(data), data["styles"] + ["average"]):
        for metric in data["scores"]:
            for arm in ("unguided", "guided"):
                out.append(
                    {
                        "style": style,
                        "n": r["n"],
                        "metric": metric,
                        "judge": metric != "hpsv2",
                        "arm": arm,
                        "value": r[f"{metric} {arm}"],
                        "se": r[f"{metric} {arm} se"],
                    }
                )
    return out


def table4_document(data: dict[str, Any]) -> dict[str, Any]:
    """`bench generate`'s document (prefcli/envelope.py): printed with --format json and written as table4.json."""
    from prefcli import envelope

    results = {
        "rows": long_rows(data),
        "styles": data["styles"],
        "n": data["n"],
        "scores": data["scores"],
        "counts": data.get("counts"),
    }
    cfg = dict(data.get("config") or {})
    return envelope.envelope("bench generate", results,
                             scorers={n: {"weights": (cfg.get("weights") or {}).get(n), "revision": (m or {}).get("weights")}
                                      for n, m in (data.get("metrics") or {}).items()},
                             options=cfg)  # fmt: skip


def _cell(v: float, se: float | None) -> str:
    return f"{v:.2f}" if se is None else f"{v:.2f} ± {se:.2f}"


def display_rows(data: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    rows = []
    cols = ["style", "n"]
    for r in table_rows(data):
        d = {"style": r["style"], "n": r["n"]}
        for metric in data["scores"]:
            for arm in ("unguided", "guided"):
                label = f"{'HPSv2' if metric == 'hpsv2' else metric + ' (judge)'} {arm} ↑"
                d[label] = _cell(r[f"{metric} {arm}"], r[f"{metric} {arm} se"])
                if label not in cols:
                    cols.append(label)
        rows.append(d)
    return rows, cols


def latex_table(data: dict[str, Any]):
    """Table 4 as a prefcli Table, so that its `.tex` comes from the one LaTeX renderer (prefcli.latex)."""
    from prefcli.harness.tables import Column, Table

    cols = [Column("style", "Style"), Column("n", "Images")]
    rows = [{"style": r["style"], "n": r["n"]} for r in table_rows(data)]
    for metric in data["scores"]:
        for arm in ("unguided", "guided"):
            key = f"{metric}_{arm}"
            cols.append(
                Column(key, f"{'HPSv2' if metric == 'hpsv2' else metric + ' (judge)'} {arm} ↑", pm=True, digits=2)
            )
            for row, r in zip(rows, table_rows(data)):
                row[key], row[f"{key}_se"] = r[f"{metric} {arm}"], r[f"{metric} {arm} se"]
    return Table(
        "table4_generation",
        "Table 4 · HPSv2 of personalized generation",
        cols,
        rows,
        note="± standard error over images; a style's score is the mean of its 80-image chunk means",
    )


def write_tables(data: dict[str, Any], out: Path) -> list[Path]:
    from prefcli import envelope, output
    from prefcli.atomic import MARKER, write_text, written_by_prefcli

    rows, cols = display_rows(data)
    written = []
    for suffix, text in (("md", output.to_markdown(rows, cols)), ("csv", output.to_csv(table_rows(data))),
                         ("json", envelope.dumps(table4_document(data))), ("tex", latex_table(data).to_latex())):  # fmt: skip
        path = out / f"table4.{suffix}"
        write_text(path, text if text.endswith("\n") else text + "\n")
        written.append(path)
    # The tables are claimed as prefcli's; images and history are claimed by their sidecars and manifests.
    files = sorted((written_by_prefcli(out) or set()) | set(TABLES))
    write_text(out / MARKER, json.dumps({"by": "prefcli bench generate", "files": files}, indent=1) + "\n")
    return written
