"""Training configs: typed validation with errors naming the file and key; every shipped config loads."""

from __future__ import annotations

import pytest

from prefcli.errors import ConfigError
from prefcli.train.config import load_config, shipped_configs


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_unknown_key_names_file_and_dotted_key(tmp_path):
    p = _write(tmp_path, "bad.yaml", "extends: tiny-cpu-base\noptim:\n  lr: 0.1\n  lrr: 0.2\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and "optim.lrr" in msg and "unknown key" in msg


def test_wrong_type_names_file_and_key(tmp_path):
    p = _write(tmp_path, "bad.yaml", "extends: tiny-cpu-base\nrun:\n  per_device_batch: lots\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: run\.per_device_batch: expected an integer, got 'lots'"):
        load_config(p)
    p = _write(tmp_path, "bad2.yaml", "stages:\n  - {name: a, steps: 10, loss_cp: 'yes'}\n")
    with pytest.raises(ConfigError, match=r"stages\[0\]\.loss_cp: expected true or false"):
        load_config(p)
    p = _write(tmp_path, "bad3.yaml", "model: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"bad3\.yaml: model: expected"):
        load_config(p)


def test_bad_values_and_unknown_names(tmp_path):
    p = _write(tmp_path, "v.yaml", "optim: {schedule: sawtooth}\n")
    with pytest.raises(ConfigError, match="optim.schedule"):
        load_config(p)
    p = _write(tmp_path, "q.yaml", "model: {qlora: true, lora: false}\n")
    with pytest.raises(ConfigError, match="model.qlora"):
        load_config(p)
    p = _write(tmp_path, "t.yaml", "model: {tiny: {latentz: 2}}\n")
    with pytest.raises(ConfigError, match="model.tiny.latentz"):
        load_config(p)
    with pytest.raises(ConfigError, match="did you mean 'tiny-cpu-base'"):
        load_config("tiny-cpu-bse")
    p = _write(tmp_path, "broken.yaml", "a: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(p)


def test_toml_and_extends_merge(tmp_path):
    p = _write(
        tmp_path, "c.toml", 'extends = "tiny-cpu-cp"\nname = "mine"\n[optim]\nlr = 0.01\n[run]\nper_device_batch = 8\n'
    )
    cfg = load_config(p)
    assert cfg.name == "mine" and cfg.optim.lr == 0.01 and cfg.run.per_device_batch == 8
    # untouched keys come from the parent chain
    assert cfg.optim.warmup_steps == 200 and cfg.model.template == "compact"
    assert [s.loss_cp for s in cfg.stages] == [True, True]


def test_every_shipped_config_loads():
    names = shipped_configs()
    for want in (
        "preftoken-idefics2-8b",
        "viper-star",
        "ablation-base",
        "ablation-cp",
        "ablation-tokens-5",
        "ablation-tokens-10",
        "ablation-tokens-20",
        "tiny-cpu-population",
        "tiny-cpu-base",
        "tiny-cpu-cp",
        "tiny-cpu-tokens",
    ):
        assert want in names
    for n in names:
        cfg = load_config(n)
        assert cfg.name == n and cfg.total_steps > 0


def test_paper_config_matches_design():
    cfg = load_config("preftoken-idefics2-8b")
    m = cfg.model
    assert (m.lora, m.qlora, m.lora_r, m.lora_alpha, m.lora_dropout, m.train_vision) == (True, True, 8, 8, 0.1, True)
    assert cfg.optim.lr == 1e-5 and cfg.optim.weight_decay == 1e-2 and cfg.data.n_ref == 8
    assert [s.steps for s in cfg.stages] == [5000, 16000]
    s1, s2 = cfg.stages
    assert s1.loss_base and s1.loss_cp and not s1.add_tokens and s1.train_lora
    assert s2.add_tokens and not s2.train_lora and s2.train_tokens and cfg.tokens.n_tokens == 10
    assert load_config("preftoken-idefics2-8b-joint").stages[1].train_lora
    # global batch 64 = per-device 2 x accumulation x processes
    assert cfg.grad_accum_for(8) == 4 and cfg.grad_accum_for(1) == 32
    with pytest.raises(ConfigError, match="global_batch"):
        cfg.grad_accum_for(3)
    v = load_config("viper-star")
    assert v.model.template == "viper" and not any(s.add_tokens or s.loss_cp for s in v.stages)
    assert [load_config(f"ablation-tokens-{n}").tokens.n_tokens for n in (5, 10, 20)] == [5, 10, 20]
    pop = load_config("tiny-cpu-population")
    assert not any(s.history for s in pop.stages)
    assert pop.total_steps == load_config("tiny-cpu-tokens").total_steps
