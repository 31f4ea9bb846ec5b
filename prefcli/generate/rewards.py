"""Differentiable scorers as weighted reward terms, presets, and held-out judges.

Any scorer whose spec says `differentiable` can be a reward: its `reward(pixels,
prompts[, state])` applies the scorer's own torch preprocessing (identical to
what `score` sees) and returns a tensor with gradients. A personalized scorer
is conditioned once on the history; the state (for the preference-token model,
the history's key/value prefix) is reused by every iteration.

The offsets c_i in w_i · (c_i − reward_i) are ReNO's (they shift the reported
loss, never the gradient or the best-image choice): HPS 1 (rewards/hps.py line
56), ImageReward 2 (rewards/imagereward.py line 30), CLIP 100 (rewards/clip.py
lines 49-53), PickScore 30 (rewards/pickscore.py lines 48-54), aesthetic 10
(rewards/aesthetic.py line 75); the history scorers' Q is a probability, so 1.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prefcli.bounds import check_finite
from prefcli.errors import ConfigError

OFFSETS: dict[str, float] = {"hpsv2": 1.0, "imagereward": 2.0, "clip": 100.0, "pickscore": 30.0, "aesthetic": 10.0,
                             "preftoken": 1.0, "viper": 1.0, "idefics": 1.0}  # fmt: skip


@dataclass(frozen=True)
class Preset:
    name: str
    rewards: tuple[tuple[str, float], ...]
    steps: int
    reproduces: str


PRESETS: dict[str, Preset] = {
    # ReNO arguments.py: hps_weighting 5.0 (HPSv2.1), imagereward 1.0, clip 0.01, pickscore 0.05, n_iters 50.
    "reno": Preset(
        "reno",
        (("hpsv2", 5.0), ("imagereward", 1.0), ("clip", 0.01), ("pickscore", 0.05)),
        50,
        "ReNO's published defaults (Eyring et al. 2024, arguments.py)",
    ),
    # The paper's section 4.2: the preference model alone, weight 0.75, 30 iterations.
    "paper": Preset("paper", (("preftoken", 0.75),), 30, "the paper's personalized generation (section 4.2, table 4)"),
}


def parse_rewards(values: Sequence[str], flag: str = "--reward") -> list[tuple[str, float]]:
    """['preftoken=0.75', 'hpsv2=5'] -> [('preftoken', 0.75), ('hpsv2', 5.0)]; a bare name weighs 1.

    The one NAME=WEIGHT reading: `flag` names the option in errors (rank's `--scorer hpsv2=5` too)."""
    out: list[tuple[str, float]] = []
    for v in values:
        name, sep, w = v.partition("=")
        name = name.strip()
        if not name:
            raise ConfigError(f"{flag} {v!r}: expected NAME=WEIGHT, e.g. preftoken=0.75")
        try:
            weight = float(w) if sep else 1.0
        except ValueError:
            raise ConfigError(f"{flag} {v!r}: the weight {w!r} is not a number") from None
        check_finite(weight, f"{flag} {v}", low=-1e6, high=1e6)
        if any(n == name for n, _ in out):
            raise ConfigError(f"{flag} {name}: given twice")
        out.append((name, weight))
    return out


def _literal(value: str) -> Any:
    low = value.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def parse_scorer_options(pairs: Sequence[tuple[str, str]], known: Sequence[str]) -> dict[str, dict[str, Any]]:
    """-o SCORER.KEY VALUE (or a bare KEY, for every reward and judge that has it) -> {scorer: {key: value}}.

    The same reading as bench's (prefcli.options.scoped); values are kept typed for the sidecar.
    """
    from prefcli.plugins import scoped_options

    scopes = scoped_options(dict(pairs), list(dict.fromkeys(known)), among="the rewards and judges here")
    return {name: {k: _literal(v) for k, v in opts.items()} for name, opts in scopes.items()}


def parse_weights(values: Sequence[str]) -> dict[str, str]:
    """--weights SPEC (every scorer) or NAME=SPEC (one); the key '*' holds the default (prefcli.weights.split_specs)."""
    from prefcli.weights import split_specs

    default, per = split_specs(values)
    return {**({"*": default} if default is not None else {}), **per}


def call_reward(scorer: Any, pixels: Any, prompts: Sequence[str], state: Any) -> Any:
    """The scorer's differentiable reward, `reward(pixels, prompts, state)` as prefcli.scorer defines it;
    a third-party scorer written before `state` was part of the protocol is called without it."""
    fn = scorer.reward
    try:
        takes_state = "state" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        takes_state = False
    return fn(pixels, prompts, state) if takes_state else fn(pixels, prompts)


@dataclass
class LoadedScorer:
    name: str
    scorer: Any
    state: Any
    weight: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)

    def ident(self) -> dict[str, Any]:
        from prefcli.scorer import Scorer

        wid = getattr(self.scorer, "weights_id", None)
        return {"name": self.name, "weights": wid if wid is not None else Scorer.weights_id.fget(self.scorer),
                "options": self.options}  # fmt: skip


def load_scorers(
    names: Sequence[str],
    *,
    weights: dict[str, str],
    options: dict[str, dict[str, Any]],
    device: str,
    history: Any,
    need_differentiable: bool,
    role: str,
) -> list[LoadedScorer]:
    """Load and condition each scorer once. Differentiability is checked before anything loads.

    `device` is already resolved (`prefcli.devices.resolve_device`): the command resolves it once, for its
    generator, rewards and judges."""
    from prefcli.errors import HistoryError
    from prefcli.plugins import get_scorer_spec

    specs = [get_scorer_spec(n) for n in names]
    built: dict[str, Any] = {}
    for spec in specs:
        if need_differentiable and spec.kind == "composite":
            # A scorer of scorers is differentiable when its parts are, which its options decide: build it
            # (its parts load later, lazily) and let it say which part is not, before any model loads.
            built[spec.name] = _load(spec, weights, options, device)
            check = getattr(built[spec.name], "check_reward", None)
            if check is None:
                raise ConfigError(
                    f"--reward {spec.name}: this scorer is not differentiable, so it cannot steer generation"
                )
            check()
        elif need_differentiable and not (spec.differentiable and hasattr(spec.load_class(), "reward")):
            raise ConfigError(f"--reward {spec.name}: this scorer is not differentiable, so it cannot steer generation "
                              "(see `prefcli scorers`, column grad)")  # fmt: skip
        if spec.uses_history and history is None:
            raise HistoryError(f"{role} {spec.name} is personalized: give --likes DIR and --dislikes DIR")
        missing = spec.missing_requirements()
        if missing:
            raise ConfigError(
                f"{role} {spec.name} needs {', '.join(missing)}"
                + (f" ({spec.install_hint})" if spec.install_hint else "")
            )
    out = []
    for spec in specs:
        opts = dict(options.get(spec.name, {}))
        scorer = built.get(spec.name) or _load(spec, weights, options, device)
        frozen = [scorer] + (list(scorer.parts()) if need_differentiable and hasattr(scorer, "parts") else [])
        for p in (p for s in frozen for p in _parameters(s)):
            p.requires_grad_(False)  # frozen: gradients reach the latent only
        state = scorer.condition(history if spec.uses_history else None)
        out.append(LoadedScorer(spec.name, scorer, state, options=opts))
    return out


def _load(spec: Any, weights: dict[str, str], options: dict[str, dict[str, Any]], device: str) -> Any:
    """Built through its handle: options parsed once, `device` taken as the command resolved it."""
    from prefcli.harness.handle import ScorerHandle

    try:
        handle = ScorerHandle(
            spec,
            weights.get(spec.name, weights.get("*")),
            device=device,
            device_resolved=True,
            options=options.get(spec.name, {}),
        )
        return handle.scorer
    except TypeError as e:
        raise ConfigError(f"-o {spec.name}.*: {e}") from None


def _parameters(scorer: Any) -> list[Any]:
    """Every torch parameter of the modules the scorer declares (`Scorer.modules()`), each once."""
    seen: dict[int, Any] = {}
    for module in scorer.modules():
        for p in module.parameters():
            seen.setdefault(id(p), p)
    return list(seen.values())


def scorer_parameters(loaded: Sequence[LoadedScorer]) -> list[Any]:
    return [p for ls in loaded for p in _parameters(ls.scorer)]


def reward_terms(loaded: Sequence[LoadedScorer], prompt: str) -> list[Any]:
    from prefcli.generate.reno import RewardTerm

    terms = []
    for ls in loaded:

        def fn(pixels: Any, _ls: LoadedScorer = ls) -> Any:
            return call_reward(_ls.scorer, pixels, [prompt] * int(pixels.shape[0]), _ls.state)

        terms.append(RewardTerm(ls.name, ls.weight, OFFSETS.get(ls.name, 0.0), fn, ls.ident()))
    return terms


def judge(loaded: Sequence[LoadedScorer], images: dict[str, Any], prompt: str) -> dict[str, dict[str, float]]:
    """{judge: {label: score}} for PIL images, each judge with its own conditioned state."""
    from prefcli.types import Candidate

    out: dict[str, dict[str, float]] = {}
    labels = list(images)
    for ls in loaded:
        cands = [Candidate.from_image(images[k], prompt=prompt) for k in labels]
        scores = ls.scorer.score(cands, ls.state)
        out[ls.name] = {k: float(s) for k, s in zip(labels, scores)}
    return out
