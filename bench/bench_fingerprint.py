"""How much the fingerprint memo saves: hashing a weights file once vs. answering from the memo.

    python bench/bench_fingerprint.py --mb 512

Writes a file of random bytes in a temporary folder, fingerprints it twice
(the second time from the (path, size, mtime, ctime, inode) memo), rewrites
it in place and fingerprints it again (a rehash). Prints seconds and ratios
measured in this one run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=256, help="File size in MiB.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="prefcli-fp-") as d:
        os.environ["PREFCLI_CACHE"] = str(Path(d) / "cache")  # a memo of its own
        from prefcli import weights as W

        f = Path(d) / "model.safetensors"
        chunk = os.urandom(1 << 20)
        with open(f, "wb") as fh:
            for _ in range(args.mb):
                fh.write(chunk)
        t0 = time.perf_counter()
        first = W.identity(str(f))
        t1 = time.perf_counter()
        second = W.identity(str(f))
        t2 = time.perf_counter()
        with open(f, "r+b") as fh:  # a rewrite in place: same size
            fh.write(b"x")
        third = W.identity(str(f))
        t3 = time.perf_counter()
        assert first == second != third
        hash_s, memo_s, rehash_s = t1 - t0, t2 - t1, t3 - t2
        print(
            f"file {args.mb} MiB: first hash {hash_s:.3f} s, memo hit {memo_s * 1000:.2f} ms "
            f"({hash_s / max(memo_s, 1e-9):.0f}x faster), rewrite in place rehashed in {rehash_s:.3f} s "
            f"({rehash_s / hash_s:.2f}x the first hash)"
        )


if __name__ == "__main__":
    main()
