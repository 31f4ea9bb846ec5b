"""Training configs: YAML or TOML files validated into typed dataclasses.

A config names the model to build (``model``), the data and how samples are
drawn (``data``), the optimizer (``optim``), the run (``run``: batch sizes,
mixed precision, logging, checkpoints) and one or more ``stages`` that run
one after another (the paper's stage 1 with L_all, then stage 2 that adds the
preference tokens). ``extends: NAME`` starts from another shipped config and
overrides it key by key (nested tables merge; lists are replaced).

Every key is checked: an unknown key or a value of the wrong type is a
``ConfigError`` naming the file and the dotted key, e.g.
``my.yaml: optim.lr: expected a number, got 'fast'``.

Shipped configs live in ``prefcli/train/configs/*.yaml`` and are picked by
name (``--config tiny-cpu-tokens``); anything else is read as a path.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefcli.errors import ConfigError

CONFIG_DIR = Path(__file__).parent / "configs"
SCHEDULES = ("cosine", "linear", "constant")
MIXED_PRECISION = ("no", "fp16", "bf16")
STAGE_KINDS = ("pairs", "attributes")
TRAINERS = ("preftoken", "pickscore")


@dataclass
class ModelConfig:
    """What to build: mirrors ``prefcli.vlm.model.VLMSpec`` (see there) plus training switches."""

    base: str = "tiny"  # "tiny", "idefics2-8b" / hub id, or a weights spec
    weights: str = "random"  # "random", "meta" or "pretrained"
    tokenizer: str = "auto"
    template: str = "preftoken"  # "preftoken", "viper" or "compact"
    max_prompt_tokens: int = 100
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 8
    lora_dropout: float = 0.1
    qlora: bool = False
    train_vision: bool = True
    dtype: str = "float32"
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool = False
    seed: int = 0
    tiny: dict = field(default_factory=dict)  # TinySize fields (tiny base only)
    history_features: str = "plain"  # toy only (compact template): "plain", "signed" or "pair-difference" (VLMSpec)
    init_from: str | None = None  # start from these weights (a model/run folder or a shipped tiny model; same spec)


@dataclass
class TokensConfig:
    """Preference tokens P_v, attached by the first stage with ``add_tokens: true``."""

    n_tokens: int = 10  # L_p
    init: str = "vocab"  # "vocab" or "uniform" (the authors')


@dataclass
class DataConfig:
    dataset: str | None = None  # a prefcli dataset directory (``--data`` overrides)
    world: dict | None = None  # no dataset: build this synthetic world (WorldConfig knobs + ``preset``)
    world_build: dict = field(default_factory=dict)  # BuildParams for the synthetic world's dataset
    n_ref: int = 8
    shuffle_history: bool = True
    val_split: str = "val"
    val_max_tasks: int = 0  # 0 = every validation task
    pixel_cache_mb: int = 2048
    # A stage with a frozen image encoder computes every training image's features once (at most
    # this many MB; 0 = off, every step runs the vision tower): prefcli.train.frozen_features.
    feature_cache_mb: int = 256
    attributes: str | None = None  # synthetic world dir for ``kind: attributes`` stages (default: the built world)
    attributes_batch: int = 64  # images per micro-step in an attributes stage


@dataclass
class OptimConfig:
    lr: float = 1e-5
    weight_decay: float = 1e-2
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    warmup_steps: int = 0
    schedule: str = "constant"  # "cosine", "linear" or "constant" (after warm-up)
    min_lr_ratio: float = 0.0
    max_grad_norm: float = 1.0  # 0 = no clipping


@dataclass
class StageConfig:
    """A run of optimizer steps with one loss, one trainable set and its own schedule."""

    name: str = "main"
    kind: str = "pairs"  # "pairs" (preference losses) or "attributes" (synthetic worlds: learn phi(image))
    steps: int = 1000
    history: bool = True  # False: history-free (the population model, or a warm-up)
    loss_base: bool = True  # L_base
    loss_cp: bool = True  # L_CP = L+ + L-
    loss_swap: float = 0.0  # toy-only history-sensitivity term's weight (prefcli/train/toy_losses.py); 0 = the paper's
    add_tokens: bool = False  # attach the preference tokens at the start of this stage
    train_base: bool = False  # every base weight (tiny models trained from scratch)
    train_lora: bool = True
    train_vision: bool = True
    train_tokens: bool = True
    lr: float | None = None  # overrides optim.lr for this stage
    warmup_steps: int | None = None
    schedule: str | None = None


@dataclass
class RunConfig:
    seed: int = 0
    per_device_batch: int = 2  # pairs per process per micro-step
    grad_accum: int = 1
    global_batch: int | None = None  # if set: grad_accum = global / (per_device x processes), exactly
    mixed_precision: str = "no"
    device: str = "auto"  # "auto", "cpu" or "cuda"
    log_every: int = 10
    eval_every: int = 500  # 0 = only at the end
    checkpoint_every: int = 1000  # 0 = only at the end
    keep_last: int = 3
    trackers: list = field(default_factory=list)  # Accelerate trackers: "tensorboard", "wandb", ...
    num_threads: int = 0  # torch CPU threads; 0 = torch's default
    deterministic: bool = True  # torch.use_deterministic_algorithms (warn-only): same seed + threads = same model


@dataclass
class TrainConfig:
    name: str = "custom"
    description: str = ""
    # "preftoken" (the VLM trainer, prefcli.train.loop) or "pickscore" (PickScore*, prefcli.train.pickscore_star).
    trainer: str = "preftoken"
    model: ModelConfig = field(default_factory=ModelConfig)
    tokens: TokensConfig = field(default_factory=TokensConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    stages: list = field(default_factory=lambda: [StageConfig()])
    source: str = ""  # where it was read from (not a key)

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    def stage_at(self, step: int) -> int:
        """Index of the stage that optimizer step `step` (1-based) belongs to."""
        end = 0
        for i, s in enumerate(self.stages):
            end += s.steps
            if step <= end:
                return i
        return len(self.stages) - 1

    def stage_start(self, index: int) -> int:
        """Number of optimizer steps before stage `index`."""
        return sum(s.steps for s in self.stages[:index])

    def tokens_at(self, stage_index: int) -> bool:
        return any(s.add_tokens for s in self.stages[: stage_index + 1])

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("source", None)
        return d

    def vlm_spec(self, device: str = "cpu", weights: str | None = None) -> Any:
        """The VLMSpec this config builds (without preference tokens: stages add them)."""
        from prefcli.vlm.model import VLMSpec

        m = self.model
        return VLMSpec(
            base=m.base,
            weights=weights or m.weights,
            tokenizer=m.tokenizer,
            template=m.template,
            max_prompt_tokens=m.max_prompt_tokens,
            n_pref_tokens=0,
            pref_init=self.tokens.init,
            lora=m.lora,
            lora_r=m.lora_r,
            lora_alpha=m.lora_alpha,
            lora_dropout=m.lora_dropout,
            qlora=m.qlora,
            train_vision=m.train_vision,
            dtype=m.dtype,
            device=device,
            seed=m.seed,
            attn_implementation=m.attn_implementation,
            tiny=dict(m.tiny),
            history_features=m.history_features,
        )

    def grad_accum_for(self, num_processes: int) -> int:
        r = self.run
        if r.global_batch is None:
            return r.grad_accum
        per_step = r.per_device_batch * num_processes
        if r.global_batch % per_step:
            raise ConfigError(
                f"{self.source or self.name}: run.global_batch {r.global_batch} is not a multiple of "
                f"per_device_batch {r.per_device_batch} x {num_processes} process(es)"
            )
        return r.global_batch // per_step


# ---------------------------------------------------------------------------
# typed loading


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:  # Optional[X] and X | None alike
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _type_name(args[0]) + " or null"
    return {
        int: "an integer",
        float: "a number",
        bool: "true or false",
        str: "a string",
        list: "a list",
        dict: "a table/mapping",
    }.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:  # Optional[X] and X | None alike
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where, key)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-5" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is list:
        if isinstance(value, list):
            return list(value)
    elif tp is dict:
        if isinstance(value, dict):
            return dict(value)
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    raise ConfigError(f"{where}: {key}: expected {_type_name(tp)}, got {shown}")


def _build(cls: Any, data: Any, where: str, prefix: str = "") -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {prefix or 'the config'}: expected a table/mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.name != "source"}
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in known:
            raise ConfigError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(known))})")
        if cls is TrainConfig and k == "stages":
            if not isinstance(v, list) or not v:
                raise ConfigError(f"{where}: stages: expected a non-empty list of stage tables")
            kwargs[k] = [_build(StageConfig, s, where, f"stages[{i}]") for i, s in enumerate(v)]
            continue
        kwargs[k] = _coerce(v, hints[k], where, key)
    return cls(**kwargs)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _read_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read ({e})") from None
    if path.suffix.lower() == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: invalid TOML ({e})") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table/mapping, got {type(data).__name__}")
    return data


def shipped_configs() -> list[str]:
    """Names of the configs shipped with prefcli."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix.lower() in (".yaml", ".yml", ".toml") or p.exists():
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        return p
    shipped = CONFIG_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    import difflib

    names = shipped_configs()
    close = difflib.get_close_matches(str(name_or_path), names, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f"; shipped: {', '.join(names)}"
    raise ConfigError(f"{name_or_path}: no such config file or shipped config{hint}")


def _raw(path: Path, seen: tuple = ()) -> dict:
    data = _read_file(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: extends: expected a string (a config name or path), got {parent!r}")
    ppath = resolve_config_path(parent if not (path.parent / parent).is_file() else path.parent / parent)
    if ppath.resolve() in seen:
        raise ConfigError(f"{path}: extends: cycle through {ppath}")
    return _merge(_raw(ppath, seen + (ppath.resolve(),)), data)


def load_config(name_or_path: str | Path, overrides: dict | None = None) -> TrainConfig:
    """A shipped config by name, or a YAML/TOML file, validated; `overrides` merge on top."""
    path = resolve_config_path(name_or_path)
    data = _raw(path, (path.resolve(),))
    if overrides:
        data = _merge(data, overrides)
    cfg = _build(TrainConfig, data, str(path))
    cfg.source = str(path)
    if "name" not in data:
        cfg.name = path.stem
    validate(cfg)
    return cfg


def _finite(x: object) -> bool:
    import math

    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate(cfg: TrainConfig) -> None:
    """Value checks the types alone cannot make."""
    where = cfg.source or cfg.name

    def bad(key: str, msg: str) -> ConfigError:
        return ConfigError(f"{where}: {key}: {msg}")

    m = cfg.model
    if cfg.trainer not in TRAINERS:
        raise bad("trainer", f"must be one of {', '.join(TRAINERS)}, got {cfg.trainer!r}")
    if cfg.trainer == "pickscore" and (
        m.lora or len(cfg.stages) != 1 or cfg.stages[0].history or cfg.stages[0].kind != "pairs"
    ):
        raise bad("trainer", "pickscore trains one history-free 'pairs' stage of every CLIP weight (no LoRA)")
    from prefcli.vlm.model import TinySize

    known_tiny = {f.name for f in dataclasses.fields(TinySize)}
    for k, v in m.tiny.items():
        if k not in known_tiny:
            raise bad(f"model.tiny.{k}", f"unknown key (known: {', '.join(sorted(known_tiny))})")
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise bad(f"model.tiny.{k}", f"expected a positive integer, got {v!r}")
    if m.template not in ("preftoken", "viper", "compact"):
        raise bad("model.template", f"must be preftoken, viper or compact, got {m.template!r}")
    if m.weights not in ("random", "meta", "pretrained"):
        raise bad("model.weights", f"must be random, meta or pretrained, got {m.weights!r}")
    if m.qlora and not m.lora:
        raise bad("model.qlora", "needs model.lora: true (a quantized model trains through adapters)")
    if cfg.tokens.init not in ("vocab", "uniform"):
        raise bad("tokens.init", f"must be vocab or uniform, got {cfg.tokens.init!r}")
    if cfg.tokens.n_tokens < 1:
        raise bad("tokens.n_tokens", "must be at least 1")
    if cfg.data.n_ref < 0:
        raise bad("data.n_ref", "must be >= 0")
    if cfg.optim.schedule not in SCHEDULES:
        raise bad("optim.schedule", f"must be one of {', '.join(SCHEDULES)}, got {cfg.optim.schedule!r}")
    o = cfg.optim
    # NaN compares false with everything: test finiteness first (an infinite lr trained a NaN model).
    if not _finite(o.lr) or o.lr <= 0:
        raise bad("optim.lr", f"must be a finite number > 0, got {o.lr!r}")
    if not isinstance(o.betas, (list, tuple)) or len(o.betas) != 2 or not all(_finite(b) for b in o.betas):
        raise bad("optim.betas", f"expected two finite numbers, got {o.betas!r}")
    for i, b in enumerate(o.betas):
        if not 0.0 <= b < 1.0:
            raise bad(f"optim.betas[{i}]", f"must lie in [0, 1), got {b!r}")
    if not _finite(o.eps) or o.eps < 0:
        raise bad("optim.eps", f"must be a finite number >= 0, got {o.eps!r}")
    if not _finite(o.weight_decay) or o.weight_decay < 0:
        raise bad("optim.weight_decay", f"must be a finite number >= 0, got {o.weight_decay!r}")
    if o.warmup_steps < 0:
        raise bad("optim.warmup_steps", f"must be >= 0, got {o.warmup_steps!r}")
    if not _finite(o.max_grad_norm) or o.max_grad_norm < 0:
        raise bad("optim.max_grad_norm", f"must be a finite number >= 0 (0 = no clipping), got {o.max_grad_norm!r}")
    if not _finite(o.min_lr_ratio) or not 0.0 <= o.min_lr_ratio <= 1.0:
        raise bad("optim.min_lr_ratio", f"must lie in [0, 1], got {o.min_lr_ratio!r}")
    if not _finite(m.lora_dropout) or not 0.0 <= m.lora_dropout < 1.0:
        raise bad("model.lora_dropout", f"must lie in [0, 1), got {m.lora_dropout!r}")
    r = cfg.run
    # numpy's seed (set by accelerate's set_seed) takes 0 .. 2**32 - 1; a larger one is a traceback there.
    for key, seed in (("model.seed", m.seed), ("run.seed", r.seed)):
        if not 0 <= seed < 2**32:
            raise bad(key, f"must lie in 0 .. {2**32 - 1}, got {seed}")
    if r.mixed_precision not in MIXED_PRECISION:
        raise bad("run.mixed_precision", f"must be one of {', '.join(MIXED_PRECISION)}, got {r.mixed_precision!r}")
    if r.device not in ("auto", "cpu", "cuda"):
        raise bad("run.device", f"must be auto, cpu or cuda, got {r.device!r}")
    for k in ("per_device_batch", "grad_accum", "keep_last"):
        if getattr(r, k) < 1:
            raise bad(f"run.{k}", "must be at least 1")
    if r.global_batch is not None and r.global_batch < 1:
        raise bad("run.global_batch", "must be at least 1")
    for k in ("log_every", "eval_every", "checkpoint_every"):
        if getattr(r, k) < 0:
            raise bad(f"run.{k}", "must be >= 0")
    token_stage_seen = False
    for i, s in enumerate(cfg.stages):
        key = f"stages[{i}]"
        if s.steps < 1:
            raise bad(f"{key}.steps", "must be at least 1")
        if s.kind not in STAGE_KINDS:
            raise bad(f"{key}.kind", f"must be one of {', '.join(STAGE_KINDS)}, got {s.kind!r}")
        if not (s.loss_base or s.loss_cp):
            raise bad(key, "enable at least one of loss_base and loss_cp")
        if s.lr is not None and (not _finite(s.lr) or s.lr <= 0):
            raise bad(f"{key}.lr", f"must be a finite number > 0, got {s.lr!r}")
        if s.warmup_steps is not None and s.warmup_steps < 0:
            raise bad(f"{key}.warmup_steps", f"must be >= 0, got {s.warmup_steps!r}")
        if s.loss_swap < 0:
            raise bad(f"{key}.loss_swap", f"must be >= 0, got {s.loss_swap}")
        if s.loss_swap > 0 and not s.history:
            raise bad(f"{key}.loss_swap", "compares the own and another user's history; it needs history: true")
        if s.schedule is not None and s.schedule not in SCHEDULES:
            raise bad(f"{key}.schedule", f"must be one of {', '.join(SCHEDULES)}")
        if s.add_tokens and token_stage_seen:
            raise bad(f"{key}.add_tokens", "preference tokens were already added by an earlier stage")
        token_stage_seen = token_stage_seen or s.add_tokens
        if not (s.train_base or (m.lora and s.train_lora) or s.train_vision or (s.train_tokens and token_stage_seen)):
            raise bad(key, "nothing would train (no LoRA, base, vision or tokens)")
        if s.train_base and m.lora:
            raise bad(f"{key}.train_base", "a LoRA model trains through adapters; set train_base: false")
    if m.weights == "meta":
        raise bad("model.weights", "'meta' has no storage and cannot train (use it through --dry-run)")
    _check_sizes(cfg, bad)


# Sane upper bounds, checked before anything is built: a config asking for 1e12 pairs a step or a
# 2**40-wide layer otherwise runs (and reports absurd throughput) or dies in the allocator late.
SIZE_BOUNDS = {
    "model.max_prompt_tokens": 100_000,
    "model.lora_r": 4096,
    "tokens.n_tokens": 4096,
    "data.n_ref": 10_000,
    "data.val_max_tasks": 10**9,
    "data.pixel_cache_mb": 10**7,
    "data.feature_cache_mb": 10**7,
    "data.attributes_batch": 65_536,
    "optim.warmup_steps": 10**9,
    "run.per_device_batch": 65_536,
    "run.grad_accum": 65_536,
    "run.global_batch": 10**7,
    "run.log_every": 10**9,
    "run.eval_every": 10**9,
    "run.checkpoint_every": 10**9,
    "run.keep_last": 10_000,
    "run.num_threads": 4096,
}
STAGE_STEPS_MAX = 10**9
#: Accelerate's trackers (accelerate.tracking.LOGGER_TYPE_TO_CLASS) and the module each needs.
TRACKERS = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "comet_ml": ("comet_ml",),
            "mlflow": ("mlflow",), "aim": ("aim",), "clearml": ("clearml",), "dvclive": ("dvclive",),
            "swanlab": ("swanlab",), "trackio": ("trackio",)}  # fmt: skip


def _check_sizes(cfg: TrainConfig, bad: Any) -> None:
    import importlib.util

    from prefcli.bounds import TINY_SIZE_MAX, check_finite, check_int

    def within(key: str, value: Any, low: int, high: int) -> None:
        try:
            check_int(value, "", low=low, high=high)
        except ConfigError as e:
            raise bad(key, str(e).lstrip(": ")) from None

    sections = {"model": cfg.model, "tokens": cfg.tokens, "data": cfg.data, "optim": cfg.optim, "run": cfg.run}
    for key, high in SIZE_BOUNDS.items():
        section, name = key.split(".")
        value = getattr(sections[section], name)
        if value is not None:
            within(key, value, 0, high)
    for k, v in cfg.model.tiny.items():
        within(f"model.tiny.{k}", v, 1, TINY_SIZE_MAX)
    for key, value, high in (("optim.lr", cfg.optim.lr, 1e3), ("model.lora_alpha", cfg.model.lora_alpha, 1e6)):
        try:
            check_finite(value, "", high=high)
        except ConfigError as e:
            raise bad(key, str(e).lstrip(": ")) from None
    for i, s in enumerate(cfg.stages):
        within(f"stages[{i}].steps", s.steps, 1, STAGE_STEPS_MAX)
        if s.warmup_steps is not None:
            within(f"stages[{i}].warmup_steps", s.warmup_steps, 0, STAGE_STEPS_MAX)
        for key, value, high in ((f"stages[{i}].lr", s.lr, 1e3), (f"stages[{i}].loss_swap", s.loss_swap, 1e6)):
            if value is not None:
                try:
                    check_finite(value, "", low=0.0, high=high)
                except ConfigError as e:
                    raise bad(key, str(e).lstrip(": ")) from None
    trackers = cfg.run.trackers
    if not isinstance(trackers, (list, tuple)):
        raise bad("run.trackers", f"expected a list of tracker names, got {trackers!r}")
    for name in trackers:
        if name not in TRACKERS:
            raise bad("run.trackers", f"unknown tracker {name!r} (known: {', '.join(sorted(TRACKERS))})")
        if not any(importlib.util.find_spec(mod) is not None for mod in TRACKERS[name]):
            raise bad("run.trackers", f"tracker {name!r} needs the {TRACKERS[name][0]} package, which is not installed")
    if cfg.data.world is not None:
        _check_world(cfg, bad)


def _check_world(cfg: TrainConfig, bad: Any) -> None:
    """The synthetic world and its build, as their own validators see them (numpy would meet them late)."""
    from prefcli.data.pickapic import BuildParams
    from prefcli.data.synthetic import WorldConfig
    from prefcli.errors import PrefcliError

    if not isinstance(cfg.data.world, dict):
        raise bad("data.world", f"expected a table of world knobs, got {cfg.data.world!r}")
    w = dict(cfg.data.world)
    try:
        WorldConfig.from_preset(w.pop("preset", "default"), **w)
    except (PrefcliError, TypeError, ValueError) as e:
        raise bad("data.world", str(e)) from None
    try:
        BuildParams(**(cfg.data.world_build or {})).validate()
    except (PrefcliError, TypeError, ValueError) as e:
        raise bad("data.world_build", str(e)) from None
