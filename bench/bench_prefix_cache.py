"""Ranking N candidates for one history: cached prefix vs the full sequence recomputed per candidate.

The preference-token scorer encodes [P_v; <s>; history turns] once per user
and runs only each candidate's own turn on top of the key/value cache
(`preftoken`'s condition/score). The reference recomputes the whole sequence
(history + candidate) for every candidate (`prefcli.vlm.scoring.score_uncached`;
it gets the history images already preprocessed, so it is charged for the
model work, not for re-reading images). Both preprocess every candidate and
give the same scores; this measures the time.

Expected ratios from sequence lengths, with P the cached prefix (preference
tokens + history tokens) and S a candidate's turn:

- per candidate, once the prefix is paid: (P + S) / S;
- for the whole ranking of N candidates: N (P + S) / (P + N S).

The cached suffix still attends to all P cached keys and the uncached run
batches N full sequences, so the measured ratio sits below the token-count
ratio; it is printed beside it.

    python bench/bench_prefix_cache.py                  # tiny model, CPU, N in {8, 64}, 8 history pairs
    python bench/bench_prefix_cache.py --full --device cuda --dtype bfloat16   # full-size IDEFICS2-8B, random weights

Timings depend on the machine; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def _images(n: int, seed: int, size: int):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(1, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def build_scorer(args: argparse.Namespace):
    """The preftoken scorer: tiny (random, 10 tokens) or the full-size architecture with random weights."""
    import torch

    from prefcli.plugins import load_scorer

    if not args.full:
        s = load_scorer(
            "preftoken", weights=f"tiny:{args.seed}", device=args.device, dtype=args.dtype, batch_size=args.batch_size
        )
        return s
    # Full-size: the real architecture and tokenizer, random weights (no download), through the same scorer class.
    from prefcli.vlm.model import VLMSpec, build_model
    from prefcli_preftoken.scorer import PrefTokenScorer

    class FullRandom(PrefTokenScorer):
        def _build(self):
            self._weights_id = "idefics2-8b-random"
            return build_model(
                VLMSpec(
                    base="idefics2-8b",
                    weights="random",
                    template="preftoken",
                    n_pref_tokens=10,
                    dtype=args.dtype or "bfloat16",
                    device=args.device,
                    seed=args.seed,
                )
            )

    torch.manual_seed(args.seed)
    return FullRandom(weights="full-random", device=args.device, dtype=args.dtype, batch_size=args.batch_size)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up (allocator, kernels, lazy imports)
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="8,64", help="candidate counts, comma-separated")
    ap.add_argument("--history", type=int, default=8, help="history pairs (N_ref)")
    ap.add_argument("--batch-size", type=int, default=16, help="sequences per forward pass, both paths")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per cell (median reported)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, help="float32 (default on the tiny model), bfloat16, float16")
    ap.add_argument("--full", action="store_true", help="full-size IDEFICS2-8B architecture, random weights (GPU)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (0: torch's default). 1 by default: on a shared 2-core machine OpenMP "
        "threads spin against other processes and tiny matmuls get 100x slower",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--format", default="table", choices=["table", "json", "csv", "markdown"])
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from prefcli import output
    from prefcli.types import Candidate, HistoryPair, UserHistory
    from prefcli.vlm import scoring
    from prefcli.vlm.template import eval_history_items

    if args.threads:
        torch.set_num_threads(args.threads)
    scorer = build_scorer(args)
    vlm = scorer.vlm
    size = 64 if not args.full else 512
    words = ["a red circle on a blue sea", "a castle at night", "a portrait of a cat in warm light", "a green forest"]
    hist_imgs = _images(2 * args.history, args.seed + 1, size)
    history = UserHistory(
        tuple(
            HistoryPair(
                liked=Candidate.from_image(hist_imgs[2 * i]),
                disliked=Candidate.from_image(hist_imgs[2 * i + 1]),
                prompt=words[i % len(words)],
            )
            for i in range(args.history)
        )
    )
    items = eval_history_items(history)
    ns = [int(x) for x in args.n.split(",") if x.strip()]
    rows = []
    for n in ns:
        cands = [
            Candidate.from_image(im, prompt=words[i % len(words)])
            for i, im in enumerate(_images(n, args.seed + 100 + n, size))
        ]
        prompts = [c.prompt for c in cands]
        hist_pixels = dict(zip([it.image.image_id for it in items], vlm.pixels([it.image for it in items])))

        def cached():
            state = scorer.condition(history)
            return scorer.score(cands, state), state  # noqa: B023 - called within this iteration

        def uncached():
            with torch.no_grad():
                return scoring.q_scores(
                    scoring.score_uncached(
                        vlm,
                        items,
                        cands,  # noqa: B023 - called within this iteration
                        prompts,  # noqa: B023
                        batch_size=args.batch_size,
                        pixel_cache=dict(hist_pixels),  # noqa: B023
                    )
                )

        t_cached, (q_cached, state) = timed(cached, args.device, args.repeats)
        t_full, q_full = timed(uncached, args.device, args.repeats)
        diff = float(np.max(np.abs(np.array(q_cached) - np.array(q_full)) / np.maximum(np.abs(q_full), 1e-12)))
        P = state.length
        S = float(np.mean([len(vlm.encoder.encode_suffix(state.prefix.prefix, None, p).ids) for p in prompts]))
        rows.append(
            {
                "N": n,
                "prefix_tokens": P,
                "suffix_tokens": round(S, 1),
                "cached_cand_per_s": n / t_cached,
                "full_cand_per_s": n / t_full,
                "measured_speedup": t_full / t_cached,
                "expected_per_cand": (P + S) / S,
                "expected_with_prefix": n * (P + S) / (P + n * S),
                "max_rel_diff": f"{diff:.1e}",
            }
        )
    dev = args.device + ("" if args.device != "cpu" else f" ({torch.get_num_threads()} threads)")
    title = (
        f"prefix cache, {'full-size IDEFICS2-8B (random)' if args.full else 'tiny model'}, {dev}, "
        f"{args.history} history pairs, preftoken template, batch {args.batch_size}"
    )
    output.emit(rows, args.format, title=title, digits=2 if args.format != "json" else 6)
    if args.format == "table":
        print(
            "expected_per_cand = (P + S) / S; expected_with_prefix = N (P + S) / (P + N S); "
            "max_rel_diff = largest |cached - full| / |full| over the N scores",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
