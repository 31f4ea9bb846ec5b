"""Benchmark `prefcli data pickapic`: rows/s and peak memory against the number of shards.

Writes one synthetic Pick-a-Pic-schema world (default 200,000 pairs, small
images, fixed rows per shard), then builds a dataset from the first half of
its shards and from all of them, each build in its own subprocess so each
has its own peak RSS. The claim to check: peak RSS does not grow with the
number of shards (the builder streams shard by shard; what grows with the
data is a few bytes per pair of metadata).

    .venv/bin/python bench/bench_build.py                 # 200k pairs
    .venv/bin/python bench/bench_build.py --pairs 40000   # quick look
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from prefcli.data import pickapic
src, out, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = time.perf_counter()
r = pickapic.build(src, out, pickapic.BuildParams(limit_shards=limit, hold_out="user", val_users=89, test_users=70), progress=False)
dt = time.perf_counter() - t
s = r.info["source_stats"]
print(json.dumps({"seconds": dt, "rows": s["rows"], "shards": s["shards"], "images": r.info["image_store"]["images"],
                  "pairs": sum(v["pairs"] for v in r.info["counts"]["splits"].values()),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=200_000)
    ap.add_argument("--rows-per-shard", type=int, default=10_000)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--pairs-per-user", type=int, default=40)
    ap.add_argument(
        "--workdir", type=Path, default=None, help="Where to write (default: a temporary folder, removed afterwards)."
    )
    args = ap.parse_args()

    from prefcli.data.synthetic import WorldConfig, write_world

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-build-"))
    try:
        n_users = max(args.pairs // args.pairs_per_user, 10)
        # A large pool (72 prompts x 64 images) so images are many and mostly distinct per user.
        cfg = WorldConfig.from_preset(
            "default", n_users=n_users, pairs_per_user=args.pairs_per_user, image_size=args.image_size,
            n_prompts=72, images_per_prompt=64, rows_per_shard=args.rows_per_shard,
        )  # fmt: skip
        t = time.perf_counter()
        world = write_world(work / "world", cfg, progress=False)
        print(
            f"world: {world['rows']:,} pairs in {world['shards']} shards, {world['images']:,} images, written in {time.perf_counter() - t:.1f} s"
        )
        results = []
        for limit in (world["shards"] // 2, world["shards"]):
            out = work / f"ds-{limit}"
            shutil.rmtree(out, ignore_errors=True)
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(work / "world"), str(out), str(limit)], capture_output=True, text=True
            )
            if proc.returncode != 0:
                sys.exit(proc.stderr)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            r["rows_per_s"] = r["rows"] / r["seconds"]
            results.append(r)
            shutil.rmtree(out, ignore_errors=True)
        print(
            f"{'shards':>6} {'rows':>9} {'pairs kept':>10} {'images':>7} {'seconds':>8} {'rows/s':>8} {'peak RSS MB':>11}"
        )
        for r in results:
            print(
                f"{r['shards']:>6} {r['rows']:>9,} {r['pairs']:>10,} {r['images']:>7,} {r['seconds']:>8.1f} {r['rows_per_s']:>8,.0f} {r['peak_rss_mb']:>11.1f}"
            )
        a, b = results
        print(
            f"shards x{b['shards'] / a['shards']:.1f}, rows x{b['rows'] / a['rows']:.2f} -> peak RSS x{b['peak_rss_mb'] / a['peak_rss_mb']:.2f} "
            f"({b['peak_rss_mb'] - a['peak_rss_mb']:+.1f} MB, {1e6 * (b['peak_rss_mb'] - a['peak_rss_mb']) / max(b['rows'] - a['rows'], 1):.0f} bytes per extra row)"
        )
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
