"""Shared test set-up: offline, first-party plugins only, real data when present."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import pytest

# Never touch the network, never load third-party plugins installed in the env.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault(
    "PREFCLI_LOAD_PLUGINS", "clip,aesthetic,pickscore,hpsv2,hpsv3,imagereward,viper,preftoken,vlmjudge,blend"
)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Never the user's cache, and one per test process: pytest-xdist workers must not share a score cache.
if "PREFCLI_CACHE" not in os.environ:
    os.environ["PREFCLI_CACHE"] = tempfile.mkdtemp(prefix="prefcli-test-cache-")
    atexit.register(shutil.rmtree, os.environ["PREFCLI_CACHE"], ignore_errors=True)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PREFCLI_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real benchmark prompts and ViPer's example user); skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set PREFCLI_SHARED_DATA to its location)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def viper_examples(shared_data: Path) -> Path:
    d = shared_data / "viper_examples"
    if not d.is_dir():
        pytest.skip(f"ViPer example user not found at {d}")
    return d


def pytest_collection_modifyitems(config, items):
    """The end-to-end tests (marked slow, the longest by far) first, in their collected order.

    `make test` hands test files to its two xdist workers in collection order (`--dist loadscope`), so
    started first the slow files share both workers from the start instead of one of them, begun late,
    running alone at the end. Per file rather than per test: a file's module fixtures (tiny models,
    built datasets, an upstream oracle's run) are then built once, not on both workers
    (`bench/bench_tests.sh`: the full suite 179 s wall, 318 CPU-s on 2 quiet cores).
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# The input-pipeline tests' fixtures (tests/cli/test_input_pipeline.py, tests/harness/test_pipeline_workers_cache.py).


@pytest.fixture
def decodes(monkeypatch) -> Counter:
    """Every decode_image call, counted by the file it names (load_image and the scans go through it)."""
    from prefcli import images  # here, not at the top: the environment above is set before prefcli loads

    seen: Counter = Counter()
    real = images.decode_image

    def counting(data, name="<bytes>", **kw):
        seen[Path(name).name] += 1
        return real(data, name, **kw)

    monkeypatch.setattr(images, "decode_image", counting)
    return seen


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory):
    """A small synthetic dataset, built once per test process; tests only read it (a test that breaks it copies it)."""
    from prefcli.data import pickapic, synthetic

    root = tmp_path_factory.mktemp("pipeline-world")
    cfg = synthetic.WorldConfig.from_preset(
        "opposed", n_users=16, pairs_per_user=12, image_size=32, n_prompts=4, images_per_prompt=6
    )
    synthetic.write_world(root / "world", cfg, progress=False)
    pickapic.build(
        str(root / "world"),
        root / "ds",
        pickapic.BuildParams(n_ref=4, min_liked=6, test_users=6, val_users=2),
        progress=False,
    )
    return root / "ds"
