"""Checkpoints: safetensors only, atomic under a crash, last K kept, optimizer/RNG round trip, load_checkpoint."""

from __future__ import annotations

import random

import pytest
import torch

from prefcli.errors import WeightsError
from prefcli.train import checkpoint as ck


@pytest.fixture(scope="module")
def model():
    from prefcli.vlm.model import set_trainable, tiny_vlm

    m = tiny_vlm(template="compact", tiny={"latents": 1, "text_layers": 1, "vision_layers": 1}, n_pref_tokens=3, seed=0)
    set_trainable(m, base=True, lora=False, tokens=True)
    return m


def _optimizer(m):
    opt = torch.optim.AdamW(m.trainable_parameters(), lr=1e-3)
    for p in m.trainable_parameters():
        p.grad = torch.randn_like(p) * 1e-3
    opt.step()
    opt.zero_grad()
    return opt


def test_checkpoint_files_are_safetensors_and_round_trip(tmp_path, model):
    opt = _optimizer(model)
    torch.manual_seed(123)
    random.seed(5)
    path = ck.save_checkpoint(tmp_path, 7, model, opt, {"step": 7, "scheduler": {}}, keep_last=3)
    assert path.name == "step-00000007"
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    weights = [f for f in files if not f.startswith("model/tokenizer/") and not f.endswith(".json")]
    assert weights and all(f.endswith(".safetensors") for f in weights), files
    assert "model/pref_tokens.safetensors" in files and "optimizer.safetensors" in files
    assert not any(f.endswith((".pt", ".bin", ".pkl")) for f in files)
    expected_next = torch.rand(3)
    py_next = random.random()

    opt2 = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3)
    torch.manual_seed(999)
    random.seed(0)
    state = ck.restore_checkpoint(path, model, opt2)
    assert state["step"] == 7
    assert torch.equal(torch.rand(3), expected_next) and random.random() == py_next
    a, b = opt.state_dict(), opt2.state_dict()
    for k, st in a["state"].items():
        for name, v in st.items():
            assert torch.equal(v, b["state"][k][name]), name

    back = ck.load_checkpoint(path)
    assert back.n_pref_tokens == 3
    assert torch.equal(back.pref_tokens.weight, model.pref_tokens.weight)
    for (n1, p1), (_, p2) in zip(model.core.named_parameters(), back.core.named_parameters()):
        assert torch.equal(p1, p2), n1


def test_crash_mid_save_leaves_no_partial_checkpoint(tmp_path, model):
    opt = _optimizer(model)
    ck.save_checkpoint(tmp_path, 1, model, opt, {"step": 1, "scheduler": {}})
    for where in ("model", "optimizer"):
        with pytest.raises(RuntimeError, match="simulated crash"):
            ck.save_checkpoint(tmp_path, 2, model, opt, {"step": 2, "scheduler": {}}, _fail_after=where)
        assert [p.name for p in tmp_path.iterdir()] == ["step-00000001"]
    assert ck.latest_checkpoint(tmp_path).name == "step-00000001"
    # a temporary folder left by a killed process is ignored and cleaned by the next save
    (tmp_path / ".step-00000003.abc.tmp").mkdir()
    (tmp_path / ".step-00000003.abc.tmp" / "half.safetensors").write_bytes(b"\0" * 10)
    assert ck.latest_checkpoint(tmp_path).name == "step-00000001"
    ck.save_checkpoint(tmp_path, 4, model, opt, {"step": 4, "scheduler": {}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000001", "step-00000004"]


def test_keep_last_k(tmp_path, model):
    opt = _optimizer(model)
    for step in (10, 20, 30, 40):
        ck.save_checkpoint(tmp_path, step, model, opt, {"step": step, "scheduler": {}}, keep_last=2)
    assert [p.name for p in ck.list_checkpoints(tmp_path)] == ["step-00000030", "step-00000040"]
    assert ck.latest_checkpoint(tmp_path).name == "step-00000040"


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(WeightsError, match="no such model folder"):
        ck.load_checkpoint(tmp_path / "missing")
    with pytest.raises(WeightsError, match="not a prefcli model"):
        ck.load_checkpoint(tmp_path)
    bad = tmp_path / "step-00000001"
    bad.mkdir()
    (bad / "optimizer.safetensors").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="optimizer.safetensors"):
        ck.load_optimizer(torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))]), bad / "optimizer.safetensors")
