"""Batched scoring vs the one-image-at-a-time loop, same scorer, same (tiny) weights.

The reference implementations of PickScore, HPSv2, ImageReward and the
aesthetic predictor score one image per forward pass in their examples; the
harness sends batches. This script measures both on the same rendered
images and prints images/s, the speed-up, and the largest score difference
(batching must not change scores beyond float noise).

    python bench/bench_batching.py                       # all tiny scorers, 64 images, CPU
    python bench/bench_batching.py --scorers clip,hpsv2 --images 256 --batch-size 64 --device cuda --weights tiny

Timings depend on the machine; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def rendered_candidates(n: int, size: int, seed: int = 0):
    import numpy as np

    from prefcli.data import synthetic
    from prefcli.types import Candidate

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        content = synthetic.CONTENTS[i % len(synthetic.CONTENTS)]
        img = synthetic.render_image(synthetic.sample_attrs(rng, content), size=size)
        out.append(Candidate.from_image(img, prompt=f"a picture of a {content}"))
    return out


def timed(fn, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scorers", default="clip,aesthetic,pickscore,hpsv2,imagereward")
    ap.add_argument("--weights", default="tiny")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)

    import torch

    from prefcli import plugins
    from prefcli.harness.runner import run_scorer
    from prefcli.types import RankTask

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    cands = rendered_candidates(args.images, args.image_size)
    for c in cands:
        _ = c.image  # decode once up front: we time scoring, not rendering
    print(
        f"{args.images} images of {args.image_size} px, batch {args.batch_size}, device {args.device}, weights {args.weights}, torch threads {torch.get_num_threads()}"
    )
    print(f"{'scorer':<14}{'loop img/s':>12}{'batched img/s':>15}{'speed-up':>10}{'max |Δscore|':>14}")
    for name in [s.strip() for s in args.scorers.split(",") if s.strip()]:
        try:
            opts = {"device": args.device} | ({"dtype": args.dtype} if args.dtype else {})
            scorer = plugins.load_scorer(name, weights=args.weights, **opts)
        except Exception as e:  # noqa: BLE001 - a scorer not built yet, or missing weights: report and go on
            print(f"{name:<14}skipped: {type(e).__name__}: {e}")
            continue
        state = scorer.condition(None) if not scorer.spec.uses_history else None
        if scorer.spec.uses_history:
            print(f"{name:<14}skipped: history-conditioned (this compares history-free scoring)")
            continue
        scorer.score(cands[:2], state)  # warm-up

        def loop():
            return [scorer.score([c], state)[0] for c in cands]  # noqa: B023 - called within this iteration

        # The harness path: one task holding every image, scored in batches (no cache).
        task = RankTask(task_id="all", candidates=cands, liked_index=0)

        def batched():
            records, _ = run_scorer(scorer, [task], cache=None, batch_size=args.batch_size)  # noqa: B023 - called within this iteration
            return records[0]["scores"]

        t_loop, s_loop = timed(loop, args.repeats)
        t_batch, s_batch = timed(batched, args.repeats)
        diff = max(abs(a - b) for a, b in zip(s_loop, s_batch))
        print(
            f"{name:<14}{args.images / t_loop:>12.1f}{args.images / t_batch:>15.1f}{t_loop / t_batch:>9.2f}x{diff:>14.2e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
