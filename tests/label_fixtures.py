"""Small labelling pools for the label tests: rendered synthetic-world images in prompt subfolders."""

from __future__ import annotations

from pathlib import Path


def make_pool(root: Path, prompts: int = 2, per_prompt: int = 5, size: int = 32, seed: int = 0) -> Path:
    """root/<prompt>/<k>.png: distinct, never dark images (safe for every scorer)."""
    import numpy as np

    from prefcli.data import synthetic

    rng = np.random.default_rng(seed)
    for p in range(prompts):
        content = synthetic.CONTENTS[p % len(synthetic.CONTENTS)]
        d = root / f"a {content}"
        d.mkdir(parents=True, exist_ok=True)
        for k in range(per_prompt):
            synthetic.render_image(synthetic.sample_attrs(rng, content), size=size).save(d / f"{k:02d}.png")
    return root
