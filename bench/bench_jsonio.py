"""What the bounded JSON reader (prefcli.jsonio) costs over a bare json.loads, on the same text.

The reader checks the kind and size of the file, decodes UTF-8 and measures
the nesting depth on a skeleton of the text before parsing. This script
builds PreferImg-like record lists of a few sizes, times `json.loads` and
`prefcli.jsonio.read_json` on each in one run, and prints the ratio.

    python bench/bench_jsonio.py                 # 1,000 / 10,000 / 100,000 records
    python bench/bench_jsonio.py --records 50000 --repeat 5

Timings depend on the machine; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def records(n: int) -> list[dict]:
    return [
        {
            "user_id": f"u{i}",
            "imageA": f"u{i}_A.png",
            "imageB": f"u{i}_B.png",
            "prompt": f'a fox [{i}] in "snow"',
            "prefered_images": [f"u{i}_p{j}.png" for j in range(5)],
            "non_prefered_images": [f"u{i}_n{j}.png" for j in range(5)],
            "conversations": [{"from": "gpt", "value": "Image A"}],
        }
        for i in range(n)
    ]


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    from prefcli import jsonio

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, nargs="*", default=[1_000, 10_000, 100_000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{'records':>8} {'MiB':>7} {'json.loads s':>13} {'read_json s':>12} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as d:
        for n in args.records:
            p = Path(d) / f"r{n}.json"
            p.write_text(json.dumps(records(n)))
            plain = best(lambda: json.loads(p.read_text(encoding="utf-8")), args.repeat)  # noqa: B023 - called within this iteration
            bounded = best(lambda: jsonio.read_json(p), args.repeat)  # noqa: B023 - called within this iteration
            print(f"{n:>8} {p.stat().st_size / 2**20:>7.1f} {plain:>13.4f} {bounded:>12.4f} {bounded / plain:>6.2f}")


if __name__ == "__main__":
    main()
