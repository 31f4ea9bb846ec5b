"""The pool's embeddings, computed once and cached as every probe's are (the harness's embedding cache)."""

from __future__ import annotations

from typing import Any

from prefcli.errors import PrefcliError


def embed_pool(
    pool,
    scorer: str = "clip-probe",
    weights: str | None = None,
    device: str | None = "auto",
    dtype: str | None = None,
    options: dict[str, Any] | None = None,
    *,
    cache_dir=None,
    progress: bool = True,
    batch_size: int = 16,
):
    """(n_images x dim) float32 embeddings of the pool, in pool order, from `scorer`'s base model."""
    import numpy as np

    from prefcli.harness.cache import CacheDir
    from prefcli.harness.runner import CachedEmbedder, RunStats
    from prefcli.plugins import get_scorer_spec
    from prefcli.progress import progress_bar
    from prefcli.types import Candidate

    spec = get_scorer_spec(scorer)
    if not spec.name.endswith("-probe"):
        raise PrefcliError(
            f"--scorer {spec.name}: label needs a per-person probe on image embeddings "
            "(such as clip-probe): it fits the person's taste after every label"
        )
    model = spec.load(weights, device=device, dtype=dtype, options=options)
    base = model.base
    cache = CacheDir(cache_dir)
    try:
        store = cache.store(spec.base or base.spec.name, base.cache_key)
        embedder = CachedEmbedder(base, store, {}, RunStats(), batch_size)
        cands = [
            Candidate(image_id=im.image_id, path=im.path, prompt=im.prompt, loader=lambda p=im.path: _load(p))
            for im in pool.images
        ]
        with progress_bar(progress) as bar:
            task = bar.add_task(f"embedding the pool with {base.spec.name if base.spec else scorer}", total=len(cands))
            embedder.ensure(cands, on_batch=lambda n: bar.advance(task, n))
        return np.stack([embedder.memory[c.image_id] for c in cands]).astype(
            np.float32
        ), f"{spec.name} ({model.weights_id})"
    finally:
        cache.close()


def _load(path: str):
    from prefcli import images

    return images.load_image(path, keep_mode=True)
