"""The IDEFICS2 family lives in prefcli/vlm: one cached scorer, one model-folder lookup, one Q formula,
and no plugin reaches into another plugin or into prefcli.train."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


@pytest.mark.parametrize("path", sorted((ROOT / "plugins").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_neither_prefcli_train_nor_each_other(path):
    own = path.relative_to(ROOT / "plugins").parts[0]
    for mod in _imports(path):
        assert not mod.startswith("prefcli.train"), f"{path} imports {mod}"
        top = mod.split(".")[0]
        assert not (top.startswith("prefcli_") and top != own), f"{path} imports another plugin ({mod})"


def test_viper_and_preftoken_share_the_cached_scorer_of_prefcli_vlm():
    from prefcli.vlm.scorer import CachedVLMScorer
    from prefcli_preftoken.scorer import PrefTokenScorer
    from prefcli_viper.scorer import IdeficsScorer, ViperScorer

    for cls in (PrefTokenScorer, IdeficsScorer, ViperScorer):
        assert issubclass(cls, CachedVLMScorer)
    assert not (ROOT / "plugins" / "prefcli_preftoken" / "cached.py").exists()


def test_one_lookup_for_shipped_models_and_model_folders(tmp_path):
    from prefcli.analyze.report import model_folder
    from prefcli.train import pretrained
    from prefcli.vlm import folders

    assert pretrained.names() == folders.shipped_names()
    assert pretrained.ROOT == folders.SHIPPED_ROOT
    for name in folders.shipped_names():
        assert folders.model_dir_of(folders.shipped_path(name)) == folders.shipped_path(name)
    run = tmp_path / "run"
    for step in (9, 10):
        (run / "checkpoints" / f"step-{step}" / "model").mkdir(parents=True)
        (run / "checkpoints" / f"step-{step}" / "model" / "vlm_spec.json").write_text("{}")
    assert folders.model_dir_of(run).parent.name == "step-10" == model_folder(run).parent.name  # by number, not by name
    with pytest.raises(Exception, match="not a prefcli model folder"):
        folders.model_dir_of(tmp_path)


def test_one_formula_for_q():
    import torch

    from prefcli.vlm.losses import q_score
    from prefcli.vlm.model import TargetOutput

    plus, minus = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 0.5])
    out = TargetOutput(torch.zeros(2, 3), plus, minus)
    assert torch.equal(out.q, q_score(plus, minus))
    assert torch.allclose(out.q, torch.softmax(torch.stack([plus, minus], -1), -1)[:, 0])
