"""Reference implementations for parity tests, kept inside tests/.

- `pickscore_readme`: PickScore's published scoring snippet (its README).
- `hpsv2_official`: the formula and preprocessing of hpsv2's `img_score.score`.
- `imagereward_package`: the `image-reward` package itself (v1.5, installed
  with `--no-deps`), made importable on today's timm/transformers by small,
  documented shims.
- `rel_err`: the one agreement measure every parity test uses.
"""

from __future__ import annotations

from typing import Sequence

PARITY_RTOL = 1e-4


def rel_err(ours: Sequence[float], ref: Sequence[float]) -> float:
    """max |ours − ref| / max |ref|: relative to the scale of the reference scores."""
    import numpy as np

    a, b = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shapes differ: {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-12))
