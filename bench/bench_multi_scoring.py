"""Several scorers at once: what `rank --scorer a --scorer b` and `bench images` cost, measured in one run.

1. `rank` with two scorers against the two single-scorer rankings run one after
   the other (the several-scorer path calls the single one per scorer, so the
   ratio should be about 1: the combination itself is free).
2. `bench images` on an HPSv2-layout folder, then the same command again: the
   rerun reads every score from the score cache and loads no model, so the
   ratio rerun / first run shows what resuming costs.

    python bench/bench_multi_scoring.py                              # tiny clip + aesthetic, 32 images, CPU
    python bench/bench_multi_scoring.py --images 256 --scorers hpsv2,aesthetic --device cuda

Timings depend on the machine; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def render(folder: Path, n: int, size: int, seed: int = 0) -> list[str]:
    """n synthetic-world images in HPSv2's layout (two styles), and their prompts."""
    import numpy as np

    from prefcli.data import synthetic

    rng = np.random.default_rng(seed)
    prompts = []
    for i in range(n):
        style, idx = ("anime", "photo")[i % 2], i // 2
        content = synthetic.CONTENTS[i % len(synthetic.CONTENTS)]
        (folder / style).mkdir(parents=True, exist_ok=True)
        synthetic.render_image(synthetic.sample_attrs(rng, content), size=size).save(folder / style / f"{idx:05d}.jpg")
        prompts.append(f"a picture of a {content}")
    return prompts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scorers", default="clip,aesthetic")
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--weights", default="tiny")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    names = [s.strip() for s in args.scorers.split(",") if s.strip()]

    import json

    from prefcli.harness.bench_images import BenchImagesConfig, run, summary_rows
    from prefcli.multirank import rank_folder_multi
    from prefcli.ranking import rank_folder

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prompts = render(root / "images", args.images, args.size)
        flat = root / "images" / "anime"
        pm = {p.name: prompts[2 * int(p.stem)] for p in flat.glob("*.jpg")}

        for n in names:  # warm-up: imports and first loads are not what is compared
            rank_folder(flat, scorer=n, weights=args.weights, device=args.device, prompts=pm)
        t0 = time.perf_counter()
        for n in names:
            rank_folder(flat, scorer=n, weights=args.weights, device=args.device, prompts=pm)
        singles = time.perf_counter() - t0
        t0 = time.perf_counter()
        rank_folder_multi(
            flat,
            scorers=[(n, 1.0) for n in names],
            weights={n: args.weights for n in names},
            device=args.device,
            prompts=pm,
        )
        several = time.perf_counter() - t0
        print(
            f"rank, {len(pm)} images: {len(names)} single rankings {singles:.2f} s, one ranking by {'+'.join(names)} "
            f"{several:.2f} s, ratio {several / singles:.2f}"
        )

        prompt_dir = root / "prompts"
        prompt_dir.mkdir()
        for k, style in enumerate(("anime", "photo")):
            (prompt_dir / f"{style}.json").write_text(json.dumps(prompts[k::2]))
        cfg = BenchImagesConfig(
            folder=str(root / "images"),
            prompts=str(prompt_dir),
            scorers=names,
            weights={"*": args.weights},
            device=args.device,
            cache_dir=str(root / "cache"),
        )
        t0 = time.perf_counter()
        first = run(cfg)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = run(cfg)
        warm = time.perf_counter() - t0
        same = summary_rows(first) == summary_rows(again)
        print(
            f"bench images, {args.images} images, {len(names)} scorers: first run {cold:.2f} s, rerun from the cache {warm:.2f} s, "
            f"ratio {warm / cold:.3f}; same table: {same}"
        )


if __name__ == "__main__":
    main()
