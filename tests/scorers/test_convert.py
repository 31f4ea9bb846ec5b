"""`prefcli convert learn-user-pref`: tokens out of a pickled module without running its code."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from json_schemas import validate  # docs/schemas/: every command's JSON
from prefcli.convert import (
    UnsafePickleError,
    learn_user_pref,
    load_prompt_pool_tokens,
    safe_torch_load,
)
from prefcli.errors import WeightsError

#: Appended to by PromptPool.__setstate__: if it ever grows, code from a pickle ran.
EXECUTED: list[str] = []


class PromptPool(nn.Module):
    """The authors' module layout: a `prompt` parameter (L_p x D) and a derived `prompt_key` tensor."""

    def __init__(self, length: int = 10, embed_dim: int = 4096, seed: int = 0):
        super().__init__()
        self.length, self.embed_dim, self.prompt_init = length, embed_dim, "uniform"
        g = torch.Generator().manual_seed(seed)
        self.register_parameter("prompt", nn.Parameter(torch.rand(length, embed_dim, generator=g)))
        self.prompt_key = torch.mean(self.prompt.detach(), dim=1)

    def __setstate__(self, state):
        EXECUTED.append("PromptPool.__setstate__")
        super().__setstate__(state)


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class EvilEval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.fixture(autouse=True)
def _clear():
    EXECUTED.clear()
    yield
    EXECUTED.clear()


@pytest.mark.parametrize("shape", [(10, 64), (10, 4096)])
def test_tokens_extracted_equal_and_no_pickled_code_runs(tmp_path, shape):
    pool = PromptPool(*shape, seed=3)
    path = tmp_path / "prompt_pool.pt"
    torch.save(pool, path)
    tokens = load_prompt_pool_tokens(path)
    assert EXECUTED == []  # the module's class was never imported, its __setstate__ never ran
    assert tokens.shape == shape and tokens.dtype == torch.float32
    assert torch.equal(tokens, pool.prompt.detach())


def test_positive_control_plain_torch_load_would_run_the_pickled_code(tmp_path):
    """Proves the side effect above is observable: the usual load does execute it."""
    path = tmp_path / "prompt_pool.pt"
    torch.save(PromptPool(10, 8), path)
    torch.load(path, weights_only=False)
    assert EXECUTED == ["PromptPool.__setstate__"]


def test_state_dict_and_bare_tensor_files_work_too(tmp_path):
    pool = PromptPool(5, 16, seed=1)
    torch.save(pool.state_dict(), tmp_path / "sd.pt")
    torch.save(pool.prompt.detach(), tmp_path / "t.pt")
    assert torch.equal(load_prompt_pool_tokens(tmp_path / "sd.pt"), pool.prompt.detach())
    assert torch.equal(load_prompt_pool_tokens(tmp_path / "t.pt"), pool.prompt.detach())
    torch.save({"other": torch.zeros(2)}, tmp_path / "none.pt")
    with pytest.raises(WeightsError, match="no 'prompt'"):
        load_prompt_pool_tokens(tmp_path / "none.pt")


def test_malicious_pickles_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"prompt": Evil(marker)}, tmp_path / "evil.pt")
    with pytest.raises(
        UnsafePickleError, match=r"evil\.pt: the pickle calls posix\.system|evil\.pt: the pickle calls nt\.system"
    ):
        safe_torch_load(tmp_path / "evil.pt")
    assert not marker.exists()
    torch.save([EvilEval()], tmp_path / "eval.pt")
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        safe_torch_load(tmp_path / "eval.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a pickle at all")
    with pytest.raises(WeightsError, match="junk.pt: not a readable PyTorch file"):
        safe_torch_load(tmp_path / "junk.pt")


# -- the whole release -> model folder -> preftoken scorer ---------------------------


def _img(seed: int, size: int = 40) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(1, 255, (size, size, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A tiny IDEFICS2 base folder and a release in the authors' format (adapter + pickled PromptPool)."""
    from peft import LoraConfig, get_peft_model

    from prefcli.vlm.model import LORA_TARGET_REGEX, PrefVLM, tiny_vlm
    from prefcli.vlm.pref_tokens import PreferenceTokens

    root = tmp_path_factory.mktemp("release")
    m = tiny_vlm(template="preftoken", seed=5).eval()
    with torch.no_grad():
        for p in m.core.parameters():
            if p.ndim >= 2:
                p.mul_(4)  # random init is too flat to tell models apart
    m.core.save_pretrained(root / "base")
    m.tokenizer.save_pretrained(root / "base")
    peft_model = get_peft_model(
        m.core, LoraConfig(r=8, lora_alpha=8, lora_dropout=0.0, target_modules=LORA_TARGET_REGEX)
    )
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)  # peft starts B at zero: no effect
    peft_model.save_pretrained(root / "rel")
    dim = m.core.config.text_config.hidden_size
    pool = PromptPool(10, dim, seed=4)
    torch.save(pool, root / "rel" / "prompt_pool.pt")
    ref = PrefVLM(peft_model, m.core, m.tokenizer, m.spec)
    tok = PreferenceTokens(10, dim)
    with torch.no_grad():
        tok.weight.copy_(pool.prompt)
    ref.set_pref_tokens(tok)
    return {"root": root, "ref": ref.eval(), "pool": pool}


def _history(n: int = 2):
    from prefcli.types import Candidate, HistoryPair, UserHistory

    return UserHistory(
        tuple(
            HistoryPair(
                liked=Candidate.from_image(_img(2 * i)),
                disliked=Candidate.from_image(_img(2 * i + 1)),
                prompt=f"prompt {i}",
            )
            for i in range(n)
        )
    )


def test_converted_release_scores_like_the_original_model(release, tmp_path):
    from prefcli.plugins import load_scorer
    from prefcli.types import Candidate
    from prefcli.vlm import scoring
    from prefcli.vlm.template import eval_history_items

    root = release["root"]
    res = learn_user_pref(root / "rel", tmp_path / "ours", base=str(root / "base"))
    assert EXECUTED == []
    assert res.tokens_shape == (10, release["ref"].pref_tokens.dim) and res.lora_r == 8 and res.lora_alpha == 8
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == [
        ".prefcli-written.json",
        "adapter",
        "pref_tokens.safetensors",
        "vlm_spec.json",
    ]
    meta = json.loads((tmp_path / "ours" / "vlm_spec.json").read_text())
    assert meta["spec"]["base"] == str(root / "base") and meta["metadata"]["n_ref"] == 8

    s = load_scorer("preftoken", weights=str(tmp_path / "ours"), device="cpu")
    assert torch.equal(s.vlm.pref_tokens.weight, release["pool"].prompt.detach())
    h = _history(2)
    cands = [Candidate.from_image(_img(50 + i), prompt=p) for i, p in enumerate(["a cat", "a red circle", "x"])]
    with pytest.warns(UserWarning, match="trained with 8"):
        got = s.score(cands, s.condition(h))
    with torch.no_grad():
        want = scoring.score_uncached(release["ref"], eval_history_items(h), cands, [c.prompt for c in cands])
    np.testing.assert_allclose(got, scoring.q_scores(want), rtol=1e-4)


def test_bin_adapter_is_read_safely_and_rewritten_as_safetensors(release, tmp_path):
    import shutil

    from safetensors.torch import load_file

    root = release["root"]
    rel2 = tmp_path / "rel-bin"
    rel2.mkdir()
    shutil.copy(root / "rel" / "adapter_config.json", rel2)
    shutil.copy(root / "rel" / "prompt_pool.pt", rel2)
    sd = load_file(str(root / "rel" / "adapter_model.safetensors"))
    torch.save(sd, rel2 / "adapter_model.bin")
    learn_user_pref(rel2, tmp_path / "out", base=str(root / "base"))
    back = load_file(str(tmp_path / "out" / "adapter" / "adapter_model.safetensors"))
    assert back.keys() == sd.keys() and all(torch.equal(back[k], sd[k]) for k in sd)


def test_cli_convert_and_clear_errors(release, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from prefcli.cli import app

    root = release["root"]
    res = CliRunner().invoke(
        app,
        [
            "convert",
            "learn-user-pref",
            str(root / "rel"),
            "--out",
            str(tmp_path / "m"),
            "--base",
            str(root / "base"),
            "--format",
            "json",
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    rows = {r["item"]: r["value"] for r in validate(json.loads(res.stdout))["results"]["rows"]}
    assert rows["preference tokens"].startswith("10 x ")
    assert (tmp_path / "m" / "pref_tokens.safetensors").is_file()

    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="no prompt_pool.pt"):
        learn_user_pref(tmp_path / "empty", tmp_path / "x")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(WeightsError, match="wenyii/learn-user-pref"):
        learn_user_pref("wenyii/learn-user-pref", tmp_path / "x", offline=True)


def test_converted_default_base_offline_names_the_repo(release, tmp_path, monkeypatch):
    from prefcli.plugins import load_scorer

    learn_user_pref(release["root"] / "rel", tmp_path / "paper")  # base defaults to HuggingFaceM4/idefics2-8b
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(WeightsError, match="HuggingFaceM4/idefics2-8b"):
        load_scorer("preftoken", weights=str(tmp_path / "paper"), device="cpu", offline=True)
