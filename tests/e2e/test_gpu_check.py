"""bench/gpu_check.sh: the full-size architectures it builds are the real ones, and `--tiny` runs every part on a CPU."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "bench" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow  # importing diffusers alone takes tens of seconds on a loaded 2-core machine
def test_sd_turbo_architecture_has_the_published_parameter_counts():
    """SD-Turbo is built from hyperparameters written in the script (no network on the GPU machine): on the meta
    device its parts must count what prefcli.generate.pipelines.KNOWN_PARAMS (the hub repository's configs) says."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from prefcli.generate.pipelines import KNOWN_PARAMS

    g = _gpu_check()
    with torch.device("meta"):
        parts = {
            "unet": UNet2DConditionModel(**g.SD_TURBO_UNET),
            "vae": AutoencoderKL(**g.SD_TURBO_VAE),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**g.SD_TURBO_TEXT)),
        }
    for name, module in parts.items():
        n = sum(p.numel() for p in module.parameters())
        assert abs(n - KNOWN_PARAMS["sd-turbo"][name]) < 0.1e6, (name, n)


@pytest.mark.slow  # imports torch, transformers and diffusers in a fresh process and builds five tiny models
def test_tiny_run_writes_one_json_with_every_part(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh"), "--tiny", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["format"] == 1 and doc["mode"] == "tiny" and doc["machine"]["device"] == "cpu"
    parts = doc["parts"]
    assert list(parts) == ["input", "rank_bf16", "generate", "rank_4bit", "train_step", "hpsv3"]

    def positive(x):
        return isinstance(x, (int, float)) and math.isfinite(x) and x > 0

    for name in ("rank_bf16", "rank_4bit"):
        r = parts[name]
        assert r["status"] == "ok", r
        assert r["candidates"] == 8 and r["history_pairs"] == 2 and r["all_finite"] is True and r["prefix_tokens"] > 0
        assert positive(r["candidates_per_s"]) and r["compute_limit_candidates_per_s"] == 380.0
        assert r["fraction_of_limit"] == pytest.approx(r["candidates_per_s"] / 380.0)
    g = parts["generate"]
    assert (
        g["status"] == "ok"
        and g["iterations"] == 3
        and positive(g["seconds_per_iteration"])
        and g["all_finite"] is True
    )
    t = parts["train_step"]
    assert t["status"] == "ok" and t["config"] == "preftoken-idefics2-8b" and t["pairs"] == 2
    assert positive(t["step_seconds"]) and positive(t["dry_run_estimate_bytes"]) and t["trainable_parameters"] > 0
    assert all(math.isfinite(v) for v in t["loss"])
    i = parts["input"]
    assert i["status"] == "ok" and positive(i["delivered_candidates_per_s"]) and i["workers"] >= 1
    assert i["model_consumes_candidates_per_s"] == parts["rank_bf16"]["candidates_per_s"]
    h = parts["hpsv3"]
    from prefcli import plugins

    if "hpsv3" in plugins.scorers():
        assert h["status"] == "ok" and positive(h["candidates_per_s"]), h
    else:
        assert h["status"] == "skipped" and "does not list hpsv3" in h["reason"]


def test_a_failing_part_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    g = _gpu_check()

    def broken(args, ctx):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(g, "part_input", broken)
    out = tmp_path / "g.json"
    code = g.main(["--tiny", "--out", str(out), "--skip", "rank_bf16,generate,rank_4bit,train_step"])
    doc = json.loads(out.read_text())
    assert code == 1
    assert (
        doc["parts"]["input"]["status"] == "error"
        and "CUDA out of memory (simulated)" in doc["parts"]["input"]["error"]
    )
    assert doc["parts"]["hpsv3"]["status"] in ("ok", "skipped") and doc["parts"]["rank_bf16"]["reason"] == "--skip"
