"""`prefcli demo`: the whole pipeline, offline, on the synthetic taste world.

Every number it prints is measured in the run:

1. the toy world the shipped tiny preference models were trained on is rebuilt
   from its seeds and turned into a dataset by the Pick-a-Pic builder; its
   *unseen* test users are people no model has met, its *seen* ones were in
   the training data with other images;
2. the harness of `prefcli bench` scores the test users' liked-vs-disliked
   tasks with a history-free `clip` and the `clip-probe` baseline on the same
   tiny random CLIP, the population model (same architecture as ours, trained
   without histories) and the shipped preference-token
   models (ViPer*-style base loss, ours without tokens, ours), and prints
   Table 1 and Table 3 at toy scale;
3. a short training run of the preference-token model shows its loss falling;
4. one brand-new person from the same population is ranked into a contact
   sheet, and the top pick is placed in that person's true ranking.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: (label in the tables, shipped model name), in the paper's ablation order.
SHIPPED_MODELS = (
    ("population model", "tiny-opposed-population"),
    ("ViPer* (base loss)", "tiny-opposed-base"),
    ("ours, no tokens (+L_CP)", "tiny-opposed-cp"),
    ("ours (+L_CP, tokens)", "tiny-opposed-tokens"),
)
#: The config whose world recipe the shipped models were trained on.
RECIPE_CONFIG = "tiny-cpu-cp"


@dataclass
class DemoConfig:
    out: Path = Path("demo-out")
    seed: int = 0
    n_ref: int = 8
    n_ref_sweep: tuple[int, ...] = (1, 2, 4)  # history models also run here, so the N_ref curve has points
    train_steps: int = 200  # the short training run's history stage
    limit: int | None = None  # evaluate at most this many test tasks per model (None: all)
    threads: int = 1  # torch CPU threads: tiny models gain nothing from more, and lose much on shared cores
    progress: bool = True


def _say(log: Callable[[str], None] | None, msg: str) -> None:
    if log:
        log(msg)


def shipped_models() -> list[tuple[str, str]]:
    from prefcli.train import pretrained

    have = set(pretrained.names())
    return [(label, name) for label, name in SHIPPED_MODELS if name in have]


def build_dataset(cfg: DemoConfig, log=None) -> Path:
    """Rebuild the shipped models' world from its seeds and its dataset (cached in --out)."""
    from prefcli.train.config import load_config
    from prefcli.train.loop import synthetic_dataset

    recipe = load_config(RECIPE_CONFIG).data
    t0 = time.perf_counter()
    ds = synthetic_dataset(recipe.world, recipe.world_build, root=cfg.out / "data", progress=cfg.progress)
    w = recipe.world
    _say(log, f"world: {w.get('n_users')} simulated users × {w.get('pairs_per_user')} pairs, preset {w.get('preset')!r}, "
              f"built into a dataset by the Pick-a-Pic builder ({time.perf_counter() - t0:.1f}s) → {ds}")  # fmt: skip
    return ds


def evaluate_models(cfg: DemoConfig, dataset: Path, log=None) -> tuple[list[dict], dict, dict]:
    """Bench the probe and every shipped model on the same tasks; return (runs, provenance, files)."""
    from prefcli.harness.bench import BenchConfig, run_bench, write_outputs
    from prefcli.train import pretrained

    entries = [("clip (tiny, history-free)", "clip", "tiny"), ("clip-probe (tiny CLIP)", "clip-probe", "tiny")] + [
        (label, "preftoken", name) for label, name in shipped_models()
    ]
    runs: list[dict] = []
    prov: dict = {}
    for label, scorer, weights in entries:
        t0 = time.perf_counter()
        history_free = scorer == "preftoken" and pretrained.results(weights).get("history_free", False)
        n_refs = [cfg.n_ref] if history_free else sorted({n for n in cfg.n_ref_sweep if n < cfg.n_ref} | {cfg.n_ref})
        bench_cfg = BenchConfig(
            dataset=str(dataset), scorers=[scorer], weights=[weights], protocols=["1v1"], n_refs=n_refs,
            split="test", cache_dir=str(cfg.out / "cache"), limit=cfg.limit,
        )  # fmt: skip
        got, p = run_bench(bench_cfg, progress=cfg.progress)
        for r in got:
            r["scorer"] = label  # several runs of one scorer with different weights: name them
            if history_free:  # the population model never reads the history: no N_ref, no sweep
                r["n_ref"], r["uses_history"] = None, False
        runs += got
        prov.setdefault("runs", []).append(
            {"label": label, "scorer": scorer, "weights": weights, **p.get("scorers", {}).get(scorer, {})}
        )
        prov.setdefault("provenance", p)
        _say(
            log,
            f"scored {label}: {got[-1]['n_tasks']} tasks at N_ref {', '.join(map(str, n_refs))} in {time.perf_counter() - t0:.1f}s",
        )
    files = write_outputs(runs, prov.get("provenance", {}) | {"demo_runs": prov.get("runs", [])}, cfg.out / "bench")
    return runs, prov, files


def short_training(cfg: DemoConfig, dataset: Path, log=None) -> dict:
    """Train the preference-token model briefly from scratch and report its loss curve."""
    from prefcli.train.config import load_config
    from prefcli.train.loop import train

    tcfg = load_config(RECIPE_CONFIG)
    # A short version of the recipe: a brief attribute warm-up, then the history stage.
    tcfg.stages[0].steps = min(tcfg.stages[0].steps, 50)
    tcfg.stages[-1].steps = cfg.train_steps
    tcfg.run.log_every = max(1, cfg.train_steps // 20)  # a curve of about 20 points
    tcfg.run.eval_every = 0  # validation only at the end: the demo shows the loss
    tcfg.run.checkpoint_every = 0
    tcfg.run.num_threads = cfg.threads
    out = cfg.out / "train"
    if out.exists():
        import shutil

        shutil.rmtree(out)  # always a fresh run: the point is to watch it learn
    result = train(tcfg, data=dataset, out=out, progress=cfg.progress)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    main = [r for r in rows if r.get("stage") == tcfg.stages[-1].name and "loss" in r]
    k = max(1, len(main) // 5)
    first = sum(r["loss"] for r in main[:k]) / k
    last = sum(r["loss"] for r in main[-k:]) / k
    curve = [{"step": r["step"], "loss": r["loss"]} for r in main]
    _say(
        log,
        f"short training: {result.steps} steps in {result.seconds:.0f}s; history-stage loss {first:.3f} → {last:.3f}",
    )
    return {"steps": result.steps, "seconds": result.seconds, "loss_first": first, "loss_last": last,
            "final_val_acc": result.final_val_acc, "curve": curve, "out": str(out)}  # fmt: skip


def rank_new_user(cfg: DemoConfig, log=None) -> dict:
    """Draw a new person from the same population and rank fresh candidates for them."""
    from prefcli.data.synthetic import WorldConfig, write_user_folders
    from prefcli.harness.handle import ScorerHandle
    from prefcli.ranking import rank_folder
    from prefcli.train.config import load_config

    models = shipped_models()
    label, model = models[-1] if models else ("clip-probe (tiny CLIP)", None)
    w = dict(load_config(RECIPE_CONFIG).data.world)
    world = WorldConfig.from_preset(w.pop("preset", "default"), **w)
    user_dir = write_user_folders(cfg.out / "new-user", world, n_history=cfg.n_ref, n_candidates=12)
    sheet = cfg.out / "ranked.jpg"
    scorer, weights = ("preftoken", model) if model else ("clip-probe", "tiny")
    ranked = rank_folder(
        user_dir / "candidates", scorer=ScorerHandle(scorer, weights), likes=user_dir / "liked", dislikes=user_dir / "disliked",
        prompts=user_dir / "prompts.json", sheet=sheet, sheet_title=f"{label}: a new user's candidates, best first",
    )  # fmt: skip
    truth = json.loads((user_dir / "truth.json").read_text())
    picked = Path(ranked.ranked[0].path).relative_to(user_dir).as_posix()
    true_rank = truth["ranking"].index(picked) + 1
    _say(log, f"new user: {label} put {picked} first; it is their true #{true_rank} of {len(truth['ranking'])}")
    return {"model": label, "top_pick": picked, "true_rank_of_top_pick": true_rank, "true_best": truth["ranking"][0],
            "n_candidates": len(truth["ranking"]), "sheet": str(sheet)}  # fmt: skip


def run_demo(cfg: DemoConfig, log: Callable[[str], None] | None = print) -> dict:
    import torch

    cfg.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _run(cfg, log, t_start)
    finally:
        torch.set_num_threads(previous_threads)


def _run(cfg: DemoConfig, log, t_start: float) -> dict:
    from prefcli.harness.tables import table1, table3

    dataset = build_dataset(cfg, log)
    runs, prov, files = evaluate_models(cfg, dataset, log)
    training = short_training(cfg, dataset, log)
    new_user = rank_new_user(cfg, log)
    from prefcli.harness.tables import headline_runs

    # The tables' numbers: history models at the largest N_ref of the sweep.
    accuracy = {r["scorer"]: r["metrics"]["all"]["top1"]["value"] for r in headline_runs(runs, "1v1")}
    return {
        "tables": [table1(runs), table3(runs)],
        "runs": runs,
        "accuracy": accuracy,
        "training": training,
        "new_user": new_user,
        "sheet": new_user["sheet"],
        "files": {k: str(v) for k, v in files.items()},
        "missing_models": [name for _, name in SHIPPED_MODELS if name not in {n for _, n in shipped_models()}],
        "seconds": time.perf_counter() - t_start,
    }
