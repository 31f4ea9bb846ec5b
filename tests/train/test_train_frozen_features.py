"""Frozen image features computed once per stage (prefcli.train.frozen_features): same model, fewer forwards."""

from __future__ import annotations

import pytest
import torch

from prefcli.train.config import load_config
from tests.train.test_train_loop import BUILD, WORLD

# The toy recipe's shape: an attributes stage trains the encoder, then a preference stage with it frozen.
CONFIG = """
extends: tiny-cpu-cp
name: test-frozen
model: {tiny: {latents: 1, text_layers: 1, vision_layers: 1}}
data: {n_ref: 4, val_max_tasks: 12, pixel_cache_mb: 16}
optim: {lr: 3.0e-3, warmup_steps: 1}
run: {per_device_batch: 8, grad_accum: 2, log_every: 1, eval_every: 0, checkpoint_every: 0, num_threads: 1}
stages:
  - {name: attributes, kind: attributes, steps: 2, history: false, train_base: true, train_lora: false}
  - {name: main, steps: 4, loss_base: true, loss_cp: true, train_base: true, train_lora: false, train_vision: false}
"""


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    from prefcli.train.loop import synthetic_dataset

    return synthetic_dataset(WORLD, BUILD, root=tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "test-frozen.yaml"
    p.write_text(CONFIG)
    return p


def _train_counting(monkeypatch, cfg, dataset_dir, out):
    """Train; return how many times the vision tower ran (each call of PrefVLM.image_features)."""
    from prefcli.train.loop import train
    from prefcli.vlm.model import PrefVLM

    calls = [0]
    real = PrefVLM.image_features

    def counted(self, pixel_values):
        calls[0] += 1
        return real(self, pixel_values)

    monkeypatch.setattr(PrefVLM, "image_features", counted)
    train(cfg, data=dataset_dir, out=out, progress=False)
    monkeypatch.setattr(PrefVLM, "image_features", real)
    return calls[0]


def test_cached_features_train_the_same_model_with_one_forward_per_stage(
    tmp_path, monkeypatch, dataset_dir, config_file
):
    from safetensors.torch import load_file

    counts = {}
    for mb in (256, 0):
        cfg = load_config(config_file, {"data": {"feature_cache_mb": mb}})
        counts[mb] = _train_counting(monkeypatch, cfg, dataset_dir, tmp_path / f"mb{mb}")
    a, b = (load_file(str(tmp_path / f"mb{mb}" / "model" / "model.safetensors")) for mb in (256, 0))
    assert a.keys() == b.keys()
    # Bit for bit: each image's features do not depend on the other images of its forward.
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    # Without the cache the tower runs at every micro-step of `main` (4 steps x 2); with it, twice: one
    # image to size the cache, then the 128 training images in one chunk. Attribute steps and
    # validation run it either way.
    assert counts[0] - counts[256] == 4 * 2 - 2


def test_a_stage_that_trains_the_encoder_gets_no_cache(dataset_dir, config_file):
    from prefcli.data.dataset import Dataset
    from prefcli.train.data import PixelStore
    from prefcli.train.frozen_features import FrozenFeatures, encoder_is_frozen
    from prefcli.vlm.model import build_model, set_trainable

    cfg = load_config(config_file)
    vlm = build_model(cfg.vlm_spec(device="cpu"))
    vlm.train()
    ds = Dataset.open(dataset_dir)
    store = PixelStore(ds, vlm.preprocess, 16)
    ids = [p.liked_image_id for p in ds.pairs("train")]

    set_trainable(vlm, base=True, lora=False, vision=True)
    assert not encoder_is_frozen(vlm)
    assert FrozenFeatures.for_stage(vlm, store, ids, 256) is None

    set_trainable(vlm, base=True, lora=False, vision=False)
    assert encoder_is_frozen(vlm)
    cache = FrozenFeatures.for_stage(vlm, store, ids, 256)
    some = list(dict.fromkeys(ids))[:9]
    with torch.no_grad():
        assert torch.equal(cache.get(some), vlm.image_features(store.get(some)))
    assert cache.get([*some, "not-a-training-image"]) is None  # the step runs the tower instead
    assert FrozenFeatures.for_stage(vlm, store, ids, 0) is None  # off

    # Attention dropout in training mode: two calls differ, so nothing is cached.
    vlm.core.config.vision_config.attention_dropout = 0.1
    assert not encoder_is_frozen(vlm)
    vlm.eval()
    assert encoder_is_frozen(vlm)
