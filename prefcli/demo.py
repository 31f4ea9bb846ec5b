"""`prefcli demo`: the whole pipeline, offline, on the synthetic taste world.

Every number it prints is measured in the run: it draws a world, builds a
dataset with the Pick-a-Pic builder, scores the held-out users' tasks with a
history-free scorer and with a personalized one through the same harness as
`prefcli bench`, and ranks one new person's candidates into a contact sheet.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


@dataclass
class DemoConfig:
    out: Path = Path("demo-out")
    preset: str = "opposed"
    users: int = 100
    pairs_per_user: int = 40
    image_size: int = 48
    seed: int = 0
    history_free: str = "clip"
    personalized: list[str] = field(default_factory=lambda: ["clip-probe"])
    weights: str = "tiny"
    n_ref: int = 8
    progress: bool = True


def _say(log: Callable[[str], None] | None, msg: str) -> None:
    if log:
        log(msg)


def build_world_and_dataset(cfg: DemoConfig, log=None) -> tuple[Path, "object"]:
    """Draw the synthetic world and turn it into a dataset (both resumable)."""
    from prefcli.data import pickapic
    from prefcli.data.synthetic import WorldConfig, write_world

    world_cfg = WorldConfig.from_preset(
        cfg.preset, n_users=cfg.users, pairs_per_user=cfg.pairs_per_user, image_size=cfg.image_size,
        world_seed=cfg.seed, user_seed=cfg.seed,
    )  # fmt: skip
    world_dir = cfg.out / "world"
    t0 = time.perf_counter()
    summary = write_world(world_dir, world_cfg, progress=cfg.progress)
    _say(log, f"world: {summary.get('rows', '?')} labelled pairs from {cfg.users} simulated users ({time.perf_counter() - t0:.1f}s) → {world_dir}")
    params = pickapic.BuildParams(n_ref=cfg.n_ref, seed=cfg.seed, val_frac=0.1, test_frac=0.3, hold_out="user", name="demo-synthetic")
    t0 = time.perf_counter()
    result = pickapic.build(str(world_dir), cfg.out / "dataset", params, progress=cfg.progress)
    _say(log, f"dataset: built with the Pick-a-Pic builder ({time.perf_counter() - t0:.1f}s) → {result.path}")
    return world_dir, world_cfg


def run_demo(cfg: DemoConfig, log: Callable[[str], None] | None = print) -> dict:
    from prefcli.harness.bench import BenchConfig, run_bench, write_outputs
    from prefcli.harness.tables import table1, table3

    cfg.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    _, world_cfg = build_world_and_dataset(cfg, log)

    scorers = [cfg.history_free, *cfg.personalized]
    bench_cfg = BenchConfig(
        dataset=str(cfg.out / "dataset"), scorers=scorers, weights=[cfg.weights], protocols=["1v1"],
        n_refs=[cfg.n_ref], split="test", cache_dir=str(cfg.out / "cache"),
    )  # fmt: skip
    runs, prov = run_bench(bench_cfg, progress=cfg.progress, log=None)
    files = write_outputs(runs, prov, cfg.out / "bench")
    tables = [table1(runs), table3(runs)]

    accuracy = {r["scorer"]: r["metrics"]["all"]["top1"]["value"] for r in runs if r.get("protocol") == "1v1"}

    # One new person from the same population, ranked into a contact sheet.
    from prefcli.data.synthetic import write_user_folders
    from prefcli.ranking import rank_folder

    user_dir = write_user_folders(cfg.out / "new-user", world_cfg, n_history=cfg.n_ref, n_candidates=12)
    sheet = cfg.out / "ranked.jpg"
    ranked = rank_folder(
        user_dir / "candidates", scorer=cfg.personalized[-1], weights=cfg.weights, likes=user_dir / "liked",
        dislikes=user_dir / "disliked", sheet=sheet, sheet_title=f"{cfg.personalized[-1]} ranking for a new user (best first)",
    )  # fmt: skip
    truth = json.loads((user_dir / "truth.json").read_text())
    true_best = truth["ranking"][0]
    picked = Path(ranked.ranked[0].path).relative_to(user_dir).as_posix()
    true_rank_of_pick = truth["ranking"].index(picked) + 1 if picked in truth["ranking"] else None

    return {
        "tables": tables,
        "runs": runs,
        "accuracy": accuracy,
        "files": {k: str(v) for k, v in files.items()},
        "sheet": str(sheet),
        "new_user": {"top_pick": picked, "true_best": true_best, "true_rank_of_top_pick": true_rank_of_pick, "n_candidates": len(truth["ranking"])},
        "seconds": time.perf_counter() - t_start,
    }
