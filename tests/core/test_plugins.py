"""The plugin seam: entry points, failure isolation, strict mode, lookups, probes."""

from __future__ import annotations

import sys
import types
import warnings
from importlib import metadata

import pytest

from prefcli import plugins
from prefcli.errors import UnknownScorerError
from prefcli.hookspecs import hookimpl
from prefcli.scorer import Scorer, ScorerSpec


class BrightnessScorer(Scorer):
    """History-free mock: mean brightness of the image."""

    def score(self, candidates, state=None):
        from PIL import ImageStat

        return [ImageStat.Stat(c.image.convert("L")).mean[0] for c in candidates]


class MockPlugin:
    @hookimpl
    def register_scorers(self, register):
        register(ScorerSpec(name="mock-bright", factory=f"{__name__}:BrightnessScorer", aliases=("bright",)))


@pytest.fixture
def fresh_registry(monkeypatch):
    plugins._reset_for_tests()
    yield
    plugins._reset_for_tests()


def _fake_entry_points(monkeypatch, eps):
    real = metadata.entry_points

    def entry_points(group=None, **kw):
        if group == plugins.GROUP:
            return eps
        return real(group=group, **kw)

    monkeypatch.setattr(plugins.metadata, "entry_points", entry_points)


def _ep(name, module):
    return metadata.EntryPoint(name=name, value=module, group=plugins.GROUP)


def test_register_and_lookup_by_alias(fresh_registry):
    plugin = MockPlugin()
    plugins.register_plugin(plugin, name="mock")
    try:
        assert plugins.get_scorer_spec("bright").name == "mock-bright"
        scorer = plugins.load_scorer("mock-bright")
        from PIL import Image

        from prefcli.types import Candidate

        dark, light = (
            Candidate.from_image(Image.new("RGB", (4, 4), (10, 10, 10))),
            Candidate.from_image(Image.new("RGB", (4, 4), (200, 200, 200))),
        )
        assert scorer.score([dark, light]) == pytest.approx([10.0, 200.0])
        assert scorer.spec.name == "mock-bright"
    finally:
        plugins.unregister_plugin(plugin)
    with pytest.raises(UnknownScorerError):
        plugins.get_scorer_spec("mock-bright")


def test_unknown_scorer_suggests_close_name(fresh_registry):
    plugins.register_plugin(MockPlugin(), name="mock")
    with pytest.raises(UnknownScorerError, match="Did you mean 'mock-bright'"):
        plugins.get_scorer_spec("mock-brigt")


def test_broken_plugin_is_one_warning_not_a_crash(fresh_registry, monkeypatch):
    good = types.ModuleType("prefcli_test_good_plugin")
    good.register_scorers = hookimpl(lambda register: register(ScorerSpec(name="good-one", factory="x.y:Z")))
    monkeypatch.setitem(sys.modules, "prefcli_test_good_plugin", good)
    _fake_entry_points(
        monkeypatch, [_ep("broken", "prefcli_no_such_module_xyz"), _ep("good", "prefcli_test_good_plugin")]
    )
    monkeypatch.delenv("PREFCLI_LOAD_PLUGINS", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = set(plugins.scorers())
    assert "good-one" in names
    messages = [str(w.message) for w in caught if issubclass(w.category, plugins.PluginLoadWarning)]
    assert len(messages) == 1 and "'broken'" in messages[0]
    assert "broken" in plugins.failures


def test_strict_mode_reraises(fresh_registry, monkeypatch):
    _fake_entry_points(monkeypatch, [_ep("broken", "prefcli_no_such_module_xyz")])
    monkeypatch.delenv("PREFCLI_LOAD_PLUGINS", raising=False)
    monkeypatch.setenv("PREFCLI_STRICT_PLUGINS", "1")
    with pytest.raises(ModuleNotFoundError):
        plugins.scorers()


def test_env_limits_which_plugins_load(fresh_registry, monkeypatch):
    loaded = []
    for name in ("alpha", "beta"):
        mod = types.ModuleType(f"prefcli_test_{name}")
        mod.register_scorers = hookimpl(
            lambda register, _n=name: (loaded.append(_n), register(ScorerSpec(name=f"{_n}-s", factory="x.y:Z")))
        )
        monkeypatch.setitem(sys.modules, f"prefcli_test_{name}", mod)
    _fake_entry_points(monkeypatch, [_ep("alpha", "prefcli_test_alpha"), _ep("beta", "prefcli_test_beta")])
    monkeypatch.setenv("PREFCLI_LOAD_PLUGINS", "beta")
    assert set(plugins.scorers()) == {"beta-s"}
    assert loaded == ["beta"]


def test_embedding_scorers_get_a_probe(fresh_registry):
    class EmbPlugin:
        @hookimpl
        def register_scorers(self, register):
            register(ScorerSpec(name="emb", factory="x.y:Z", embedding=True, default_weights="w"))

    plugins.register_plugin(EmbPlugin(), name="emb")
    probe = plugins.get_scorer_spec("emb-probe")
    assert probe.uses_history and probe.default_weights == "w"
    assert probe.base == "emb" and "C" in probe.options.names() and "batch_size" in probe.options.names()


def test_spec_validation():
    with pytest.raises(ValueError, match="unknown inputs"):
        ScorerSpec(name="bad", factory="a:b", needs=frozenset({"video"}))
    with pytest.raises(ValueError, match="module:Class"):
        ScorerSpec(name="bad", factory="nocolon")


def test_first_party_plugins_are_entry_points():
    names = {ep.name for ep in metadata.entry_points(group=plugins.GROUP)}
    assert {"clip", "aesthetic", "pickscore", "hpsv2", "imagereward", "viper", "preftoken"} <= names


def test_an_unmarked_hook_is_not_registered(fresh_registry):
    """pluggy collects only @hookimpl-marked implementations; prefcli says so instead of registering it."""

    class Unmarked:
        def register_scorers(self, register):  # no @hookimpl
            register(ScorerSpec(name="sneaky", factory="x.y:Z"))

    with pytest.warns(plugins.PluginLoadWarning, match="without @hookimpl"):
        plugins.register_plugin(Unmarked(), name="unmarked")
    assert "sneaky" not in plugins.scorers()
    plugins.unregister_plugin(name="unmarked")
