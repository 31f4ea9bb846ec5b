"""The scorer constructor contract: `Scorer(weights, device, dtype, *, spec, options)`.

Options are declared once (the spec's typed Options class) and parsed once (by the
spec); a scorer reads `self.options.NAME`. These tests read every registered
scorer's source (AST) for the three ways that contract used to be broken: an
option re-declared as an `__init__` keyword with its own default, the default
weights restated in the scorer module, and a `weights or DEFAULT` fallback.
They also check what the base class gives a third-party scorer that implements
only `condition` and `score`.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest

import harness_fakes as fakes
from prefcli import plugins
from prefcli.hookspecs import hookimpl
from prefcli.scorer import EmbeddingScorer, PairwiseScorer, Scorer, ScorerSpec

#: The constructor's own parameters; anything else in an `__init__` signature is an option re-declared.
CONTRACT = {"self", "weights", "device", "dtype", "spec", "options", "embedder", "args", "kwargs"}
BASES = (Scorer, EmbeddingScorer, PairwiseScorer)


def _own_classes(cls: type) -> list[type]:
    """The scorer class and its ancestors below the contract's base classes."""
    return [k for k in cls.__mro__ if issubclass(k, Scorer) and k not in BASES]


def _is_docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def contract_breaches(module_source: str, class_name: str, option_names: set[str], default_weights: str) -> list[str]:
    """What in `class_name` (and its module) breaks the constructor contract; [] when nothing does.

    A function of the source text, so it can be run on any version of a file.
    """
    tree = ast.parse(textwrap.dedent(module_source))
    out: list[str] = []
    for node in tree.body:  # the default weights restated as a module constant
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "DEFAULT_WEIGHTS" for t in targets):
                out.append(
                    f"module-level DEFAULT_WEIGHTS (line {node.lineno}): ScorerSpec.load passes the spec's default_weights"
                )
    docstrings = {id(n.value) for n in ast.walk(tree) if _is_docstring(n)}
    if default_weights:
        for n in ast.walk(tree):
            if isinstance(n, ast.Constant) and n.value == default_weights and id(n) not in docstrings:
                out.append(f"the default weights {default_weights!r} restated (line {n.lineno})")
    cls = next((n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == class_name), None)
    if cls is None:
        return out + [f"class {class_name} not found"]
    for fn in cls.body:
        if isinstance(fn, ast.FunctionDef) and fn.name == "__init__":
            a = fn.args
            params = {p.arg for p in a.posonlyargs + a.args + a.kwonlyargs}
            for p in sorted(params - CONTRACT):
                why = (
                    f"an option of its Options class; read self.options.{p}"
                    if p in option_names
                    else "not part of the contract"
                )
                out.append(f"{class_name}.__init__ declares {p!r} (line {fn.lineno}): {why}")
    for n in ast.walk(cls):  # `weights or SOMETHING`: a default kept beside the spec's (`or ""` is no default)
        if isinstance(n, ast.BoolOp) and isinstance(n.op, ast.Or):
            first, rest = n.values[0], n.values[1:]
            name = first.id if isinstance(first, ast.Name) else first.attr if isinstance(first, ast.Attribute) else ""
            if name == "weights" and not all(isinstance(r, ast.Constant) and not r.value for r in rest):
                out.append(
                    f"{class_name}: a fallback for the weights (line {n.lineno}); the loader passes default_weights"
                )
    return out


def _registered() -> list[str]:
    return sorted(plugins.scorers())


@pytest.mark.parametrize("name", _registered())
def test_no_scorer_redeclares_an_option_or_its_default_weights(name):
    spec = plugins.get_scorer_spec(name)
    problems = []
    for klass in _own_classes(spec.load_class()):
        source = inspect.getsource(inspect.getmodule(klass))
        problems += contract_breaches(source, klass.__name__, set(spec.options.names()), spec.default_weights)
    assert not problems, f"{name}: " + "; ".join(problems)


def test_the_checker_finds_each_breach():
    """The AST check itself: each old pattern is caught, the contract's own form is not."""
    old = """
DEFAULT_WEIGHTS = "org/model"

class S(Scorer):
    def __init__(self, weights=None, device="cpu", dtype=None, *, version="2.1", batch_size=16, **options):
        super().__init__(weights=weights or DEFAULT_WEIGHTS, device=device, dtype=dtype, **options)
        self.base = self.weights or "org/model"
"""
    found = contract_breaches(old, "S", {"version", "batch_size"}, "org/model")
    text = " ".join(found)
    assert "module-level DEFAULT_WEIGHTS" in text
    assert "'version'" in text and "'batch_size'" in text and "an option of its Options class" in text
    assert text.count("a fallback for the weights") == 2
    assert "restated" in text
    new = '''
class S(Scorer):
    """Loads org/model by default (a docstring may say so)."""

    def __init__(self, weights=None, device="cpu", dtype=None, *, spec=None, options=None):
        super().__init__(weights, device, dtype, spec=spec, options=options)
        self.model = load(self.weights, self.options.version)
'''
    assert contract_breaches(new, "S", {"version", "batch_size"}, "org/model") == []


# -- what the base class gives a third-party scorer -----------------------------------


class OnlyTwo(Scorer):
    """A third-party personalized scorer that implements only condition and score."""

    min_history = 1

    def condition(self, history):
        super().condition(history)
        fakes.CALLS["only-two.condition"] += 1
        return sum(fakes.quality(p.liked.image_id) for p in history.pairs) / len(history.pairs)

    def score(self, candidates, state=None):
        fakes.CALLS["only-two.score"] += 1
        return [-abs(fakes.quality(c.image_id) - state) for c in candidates]


class WithModule(Scorer):
    """A third-party scorer holding a torch module under a name nothing knows: it declares it."""

    def __init__(self, weights=None, device="cpu", dtype=None, *, spec=None, options=None):
        super().__init__(weights, device, dtype, spec=spec, options=options)
        import torch

        self.unusual_name = torch.nn.Linear(3, 1).to(torch.float64)

    def modules(self):
        return (self.unusual_name,)

    def score(self, candidates, state=None):
        return [0.0] * len(candidates)


class ThirdParty:
    @hookimpl
    def register_scorers(self, register):
        register(
            ScorerSpec(
                name="only-two",
                factory=f"{__name__}:OnlyTwo",
                needs=frozenset({"image", "history"}),
                default_weights="w",
            )
        )
        register(ScorerSpec(name="with-module", factory=f"{__name__}:WithModule", default_weights="w"))


@pytest.fixture
def third_party():
    plugins.register_plugin(ThirdParty(), name="third-party")
    fakes.reset()
    yield
    plugins.unregister_plugin(name="third-party")
    fakes.reset()


def test_a_scorer_with_only_condition_and_score_gets_the_rest_from_the_base_class(third_party):
    from prefcli.harness.runner import run_scorer

    scorer = plugins.load_scorer("only-two", device="cpu")
    assert "score_histories" not in OnlyTwo.__dict__ and "modules" not in OnlyTwo.__dict__
    assert scorer.modules() == () and scorer.batches_histories is False
    assert scorer.used == {"dtype": None, "device": "cpu"}  # no module: what it was given
    assert scorer.weights == "w" and scorer.batch_size == 16 and scorer.options.batch_size == 16

    tasks = fakes.make_tasks(5, 2, "1v1", n_ref=3)
    jobs = [(t.history, t.candidates) for t in tasks[:3]]
    assert scorer.score_histories(jobs) == [scorer.score(c, scorer.condition(h)) for h, c in jobs]

    fakes.reset()
    records, stats = run_scorer(scorer, tasks, cache=None, batch_size=8)
    # History by history: one condition per distinct history, no cross-history batching asked of it.
    assert stats.conditioned == 5 == fakes.CALLS["only-two.condition"]
    assert fakes.CALLS["only-two.score"] == 5 and stats.candidates_scored == 20
    for r, t in zip(records, tasks):
        taste = sum(fakes.quality(p.liked.image_id) for p in t.history.pairs) / len(t.history.pairs)
        assert r["scores"] == [-abs(fakes.quality(c.image_id) - taste) for c in t.candidates]


def test_declared_modules_are_what_provenance_and_generate_read(third_party):
    from prefcli.generate.rewards import _parameters

    scorer = plugins.load_scorer("with-module", device="cpu")
    assert scorer.used == {"dtype": "float64", "device": "cpu"}  # read from the declared module's weights
    assert scorer.identity["dtype"] == "float64"
    params = _parameters(scorer)
    assert len(params) == 2 and all(p is q for p, q in zip(params, scorer.unusual_name.parameters()))


def test_options_arrive_once_as_the_spec_options_instance(third_party):
    spec = plugins.get_scorer_spec("with-module")
    opts = spec.parse_options({"batch_size": "3"})
    scorer = spec.load(device="cpu", options=opts)
    assert scorer.options is opts and scorer.batch_size == 3
    with pytest.raises(TypeError, match="expected HPSv2Options"):  # another scorer's options are a mistake, caught
        WithModule(spec=plugins.get_scorer_spec("hpsv2"), options=opts)
