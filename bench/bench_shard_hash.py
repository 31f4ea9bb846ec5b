"""Benchmark the Pick-a-Pic builder's shard identity: a sha256 of the whole shard against the
first+last MiB it used to hash, and both against building a dataset from that shard.

Writes one Pick-a-Pic-schema shard of about `--mb` MB (the test fixture's rows with larger
random images), then in this one process times: the whole-file sha256 (streamed in 1 MiB
chunks), the head+tail hash, and `prefcli data pickapic` on that shard alone. The journal
hashes each local shard twice per build (when pass 1 reads it, and before pass 2 uses its
rows) and checks the quick head+tail identity of every read shard on each resume, so the
ratio to watch is 2 x whole-hash / build.

    .venv/bin/python bench/bench_shard_hash.py            # ~100 MB
    .venv/bin/python bench/bench_shard_hash.py --mb 30    # quicker
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=100.0, help="approximate shard size")
    ap.add_argument("--repeat", type=int, default=3, help="hash timings: best of N")
    args = ap.parse_args()

    import _pickapic_fixture as fx
    from prefcli.data import pickapic
    from prefcli.weights import sha256_file

    # ~49 KB per random 128 px PNG; a fixture user's rows hold ~2.35 MB of them (measured).
    per_user_mb = 2.35
    n_users = max(1, round(args.mb / per_user_mb))
    real_png = fx.png
    fx.png = lambda rng, size=128: real_png(rng, 128)
    with tempfile.TemporaryDirectory(prefix="prefcli-bench-hash-") as d:
        root = Path(d)
        (shard,) = fx.write_shards(root / "src", seed=1, n_shards=1, n_users=n_users, row_group_size=64)
        size = shard.stat().st_size

        def best(fn) -> float:
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            return min(times)

        whole = best(lambda: sha256_file(shard))
        head_tail = best(lambda: pickapic._head_tail_sha256(shard, size))
        params = pickapic.BuildParams(n_ref=4, min_liked=10, val_users=2, test_users=2, seen_test_frac=0.5)
        t = time.perf_counter()
        pickapic.build(str(root / "src"), root / "ds", params, progress=False)
        build = time.perf_counter() - t
    mb = size / 1e6
    print(f"shard: {mb:.1f} MB ({n_users} users)")
    print(f"whole-file sha256:  {whole:.3f} s  ({mb / whole:.0f} MB/s)")
    print(f"head+tail sha256:   {head_tail:.4f} s")
    print(f"build of the shard: {build:.2f} s (the two whole-file hashes included)")
    print(f"2 x whole-hash / build = {2 * whole / build:.1%}")


if __name__ == "__main__":
    main()
