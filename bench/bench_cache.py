"""A second `prefcli bench` over the same dataset vs the first: wall-time ratio.

The first run scores everything and fills the score/embedding cache; the
second should be answered from the cache without building any model. Both
runs go through the real CLI in fresh processes (`python -m prefcli bench`),
so the times are what a user waits, start-up included.

    python bench/bench_cache.py                         # builds a small synthetic dataset, all tiny scorers
    python bench/bench_cache.py --dataset data/pickapic --scorers pickscore,hpsv2 --weights "" --device cuda

Timings depend on the machine; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCORERS = "clip,aesthetic,pickscore,hpsv2,imagereward,clip-probe"


def synthetic_dataset(root: Path, users: int) -> Path:
    from prefcli.data import pickapic, synthetic

    cfg = synthetic.WorldConfig.from_preset(
        "opposed", n_users=users, pairs_per_user=24, image_size=64, n_prompts=8, images_per_prompt=12
    )
    synthetic.write_world(root / "world", cfg, progress=False)
    res = pickapic.build(
        str(root / "world"),
        root / "ds",
        pickapic.BuildParams(n_ref=8, min_liked=8, test_users=max(4, users // 5), val_users=2),
        progress=False,
    )
    return res.path


def run_bench(args: argparse.Namespace, dataset: Path, out: Path, cache: Path) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "prefcli", "bench", str(dataset), "--scorers", args.scorers, "--out", str(out), "--cache-dir", str(cache),
           "--device", args.device, "--format", "json", "--no-progress"]  # fmt: skip
    if args.weights:
        cmd += ["--weights", args.weights]
    env = dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"bench failed:\n{proc.stderr}")
    return wall, json.loads((out / "results.json").read_text())["results"]  # the envelope (docs/outputs.md)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=Path, help="an existing dataset (default: build a synthetic one)")
    ap.add_argument("--users", type=int, default=30, help="users of the synthetic world")
    ap.add_argument("--scorers", default=SCORERS)
    ap.add_argument("--weights", default="tiny", help="'' for each scorer's default weights")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="prefcli-bench-cache-") as tmp:
        tmp = Path(tmp)
        dataset = args.dataset or synthetic_dataset(tmp, args.users)
        first, r1 = run_bench(args, dataset, tmp / "out1", tmp / "cache")
        second, r2 = run_bench(args, dataset, tmp / "out2", tmp / "cache")
        scored1 = sum(r["stats"]["candidates_scored"] for r in r1["runs"])
        scored2 = sum(r["stats"]["candidates_scored"] for r in r2["runs"])
        loaded2 = sum(r["stats"]["loaded_model"] for r in r2["runs"])
        same = [r["metrics"] for r in r1["runs"]] == [r["metrics"] for r in r2["runs"]]
        n_tasks = {(r["protocol"], r["n_ref"]): r["n_tasks"] for r in r1["runs"]}
        print(
            f"dataset {dataset} ({max(n_tasks.values())} tasks per protocol/N_ref), scorers {args.scorers}, weights {args.weights or 'default'}"
        )
        print(f"first run : {first:7.2f} s wall, {scored1} candidates scored")
        print(
            f"second run: {second:7.2f} s wall, {scored2} candidates scored, {loaded2} runs loaded a model, same metrics: {same}"
        )
        print(f"ratio first/second: {first / second:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
