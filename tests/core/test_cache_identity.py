"""An honest score cache: a score is served only to the very model, options, dtype, device kind and
scorer code that computed it (issue 9 §2)."""

from __future__ import annotations

import os

import pytest

import harness_fakes as fakes
from picture_factory import structured_images
from prefcli import plugins
from prefcli.harness.cache import CacheDir
from prefcli.harness.runner import ScorerHandle, run_scorer
from prefcli.types import Candidate, RankTask, UserHistory


@pytest.fixture(autouse=True)
def own_caches(tmp_path, monkeypatch):
    # The fingerprint memo and every cache live in this test's folder.
    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path / "prefcli-cache"))
    monkeypatch.setenv("PREFCLI_CACHE_DIR", str(tmp_path / "harness-cache"))


def _tasks(n: int = 3) -> list[RankTask]:
    imgs = structured_images([(32, 32)] * (2 * n), seed=7)
    cands = [Candidate.from_image(im, prompt="a fox") for im in imgs]
    return [
        RankTask(
            task_id=f"t{i}", candidates=cands[2 * i : 2 * i + 2], liked_index=0, history=UserHistory(), protocol="1v1"
        )
        for i in range(n)
    ]


def _write_head(path, seed: int) -> None:
    from prefcli import weights as W
    from prefcli_aesthetic.mlp import tiny_mlp

    W.save_state_dict(tiny_mlp(seed).state_dict(), path)


def _run(name, weights, cache, **kw):
    handle = ScorerHandle(name, weights, device="cpu", cache=cache, **kw)
    records, stats = run_scorer(handle, _tasks(), cache=cache)
    return [s for r in records for s in r["scores"]], stats, handle


def test_a_model_rewritten_in_place_gets_new_scores(tmp_path):
    head = tmp_path / "head.safetensors"
    _write_head(head, 0)
    cache = CacheDir(tmp_path / "c")
    first, s1, _ = _run("aesthetic", str(head), cache, options={"clip_weights": "tiny"})
    assert s1.candidates_scored == 6
    again, s2, _ = _run("aesthetic", str(head), cache, options={"clip_weights": "tiny"})
    assert (
        again == first and s2.candidates_scored == 0 and not s2.loaded_model
    )  # unchanged: all cached, model never built

    # Retrain in place: same name, same size, and even the old modification time put back.
    st = head.stat()
    _write_head(head, 1)
    os.utime(head, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert head.stat().st_size == st.st_size and head.stat().st_mtime_ns == st.st_mtime_ns
    new, s3, handle = _run("aesthetic", str(head), cache, options={"clip_weights": "tiny"})
    assert s3.candidates_scored == 6, "the rewritten model's scores must be computed, not served from the cache"
    assert new != first
    assert handle.weights_id.startswith("file:sha256:")


def test_bf16_then_fp32_are_two_entries(tmp_path):
    cache = CacheDir(tmp_path / "c")
    bf, s1, h1 = _run("clip", "tiny", cache, dtype="bf16")
    fp, s2, h2 = _run("clip", "tiny", cache, dtype="fp32")
    assert s1.candidates_scored == 6 and s2.candidates_scored == 6
    assert h1.identity["dtype"] == "bfloat16" and h2.identity["dtype"] == "float32"  # what ran, never "auto"
    assert h1.cache_key != h2.cache_key
    assert len(list((tmp_path / "c").glob("clip--*.sqlite"))) == 2
    auto, s3, h3 = _run("clip", "tiny", cache)  # auto on CPU is fp32: the fp32 entries serve it
    assert h3.identity["dtype"] == "float32" and h3.identity["device"] == "cpu"
    assert auto == fp


def test_the_same_relative_name_in_two_folders_is_two_entries(tmp_path, monkeypatch):
    for folder, seed in (("a", 0), ("b", 1)):
        (tmp_path / folder).mkdir()
        _write_head(tmp_path / folder / "head.safetensors", seed)
    cache = CacheDir(tmp_path / "c")
    monkeypatch.chdir(tmp_path / "a")
    in_a, s1, ha = _run("aesthetic", "head.safetensors", cache, options={"clip_weights": "tiny"})
    monkeypatch.chdir(tmp_path / "b")
    in_b, s2, hb = _run("aesthetic", "head.safetensors", cache, options={"clip_weights": "tiny"})
    assert s2.candidates_scored == 6 and in_a != in_b
    assert ha.cache_key != hb.cache_key


def test_options_that_change_scores_are_part_of_the_key_and_batch_size_is_not(tmp_path):
    cache = CacheDir(tmp_path / "c")
    _, _, h1 = _run("hpsv2", "tiny", cache)
    pct, s2, h2 = _run("hpsv2", "tiny", cache, options={"percent": "true"})
    assert s2.candidates_scored == 6 and h1.cache_key != h2.cache_key
    _, s3, h3 = _run("hpsv2", "tiny", cache, options={"percent": "true", "batch_size": "1"})
    assert s3.candidates_scored == 0 and h3.cache_key == h2.cache_key


def test_a_bench_rerun_after_a_code_version_bump_rescores(tmp_path):
    from prefcli.harness import bench
    from prefcli.hookspecs import hookimpl
    from prefcli.scorer import ScorerSpec

    def plugin(version: int):
        class VersionedMock:
            @hookimpl
            def register_scorers(self, register):
                register(
                    ScorerSpec(
                        name="mock-versioned",
                        factory="harness_fakes:MockFree",
                        needs=frozenset({"image", "prompt"}),
                        default_weights="mock-w",
                        version=version,
                    )
                )

        return VersionedMock()

    cfg = bench.BenchConfig(
        dataset="fake", scorers=["mock-versioned"], protocols=["1v1"], cache_dir=str(tmp_path / "c"), n_boot=10
    )
    fakes.reset()
    plugins.register_plugin(plugin(1), name="versioned")
    try:
        runs, _ = bench.run_bench(cfg, dataset=fakes.FakeDataset())
        assert runs[0]["stats"]["candidates_scored"] > 0
        runs, _ = bench.run_bench(cfg, dataset=fakes.FakeDataset())
        assert runs[0]["stats"]["candidates_scored"] == 0  # same code: all from the cache
    finally:
        plugins.unregister_plugin(name="versioned")
    plugins.register_plugin(plugin(2), name="versioned")  # e.g. a preprocessing fix
    try:
        runs, prov = bench.run_bench(cfg, dataset=fakes.FakeDataset())
        assert runs[0]["stats"]["candidates_scored"] > 0, "entries of the old code version must not be served"
        assert prov["scorers"]["mock-versioned"]["identity"]["version"] == 2
    finally:
        plugins.unregister_plugin(name="versioned")


def test_the_general_scorers_start_above_the_implicit_version():
    # Their preprocessing was fixed for parity with upstream: version-1 entries are stale.
    for name in ("clip", "aesthetic", "pickscore", "hpsv2", "imagereward"):
        assert plugins.get_scorer_spec(name).version >= 2, name


def test_fingerprint_memo_skips_rehashing_but_not_rewrites(tmp_path, monkeypatch):
    from prefcli import weights as W

    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 1000)
    calls = []
    real = W.sha256_file
    monkeypatch.setattr(W, "sha256_file", lambda p: (calls.append(p), real(p))[1])
    one = W.identity(str(f))
    two = W.identity(str(f))
    assert one == two and len(calls) == 1  # the unchanged file was not hashed again
    st = f.stat()
    f.write_bytes(b"b" * 1000)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert W.identity(str(f)) != one and len(calls) == 2


def test_hub_identity_is_the_resolved_commit(tmp_path, monkeypatch):
    from prefcli import weights as W

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert W.identity("hf-hub:org/model").endswith("@main?unresolved")
    refs = tmp_path / "hub" / "models--org--model" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text("a" * 40)
    assert W.identity("hf-hub:org/model") == f"hf-hub:org/model@{'a' * 40}"
    assert W.identity("org/model@" + "b" * 40) == f"hf-hub:org/model@{'b' * 40}"
