"""Reference implementations and upstream oracles for parity tests, kept inside tests/.

- `parity_images`: the image kinds every parity test runs (square, non-square,
  palette, RGBA files) and the long prompt.
- `hpsv2_official`: the `hpsv2` package's own transform, tokenizer, model and
  scoring loop (installed with `--no-deps`).
- `openai_clip`: OpenAI's `clip` package's own `_transform` and `tokenize`
  (openai-clip, `--no-deps`), for clip and aesthetic.
- `transformers427`: transformers 4.27.3 itself (PickScore's pinned version),
  run in a child process, for PickScore's processor.
- `pickscore_readme`: PickScore's published scoring snippet (its README).
- `imagereward_package`: the `image-reward` package itself (v1.5, installed
  with `--no-deps`), made importable on today's timm/transformers by small,
  documented shims.
- `hpsv3_inferencer`: the hpsv3 1.0.0 wheel's `HPSv3RewardInferencer`, run
  under transformers 4.45.2 in a child process (both `--no-deps` oracle folders).
- `rel_err`: the one agreement measure every parity test uses.
"""

from __future__ import annotations

from collections.abc import Sequence

PARITY_RTOL = 1e-4


def rel_err(ours: Sequence[float], ref: Sequence[float]) -> float:
    """max |ours − ref| / max |ref|: relative to the scale of the reference scores."""
    import numpy as np

    a, b = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shapes differ: {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-12))
