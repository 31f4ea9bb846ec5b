"""The training loop: Accelerate, stages, the preference losses, validation, metrics, exact resume.

``train(cfg, ...)`` runs the config's stages one after another. Each stage
sets what trains (base weights, LoRA, vision, preference tokens), which
losses are on (L_base, L_CP) and whether samples carry a history, and gets
its own AdamW and learning-rate schedule (warm-up, then cosine / linear /
constant). The first stage with ``add_tokens`` attaches the preference
tokens (seeded, so a resumed run attaches the very same ones).

One optimizer step = ``grad_accum`` micro-batches of ``per_device_batch``
pairs on each of the Accelerate processes (global batch = per-device batch
x accumulation x processes). Each micro-batch holds B pairs as 2B sequences
(B liked targets, then the same B contexts with the disliked targets), so
L+ and L- compare two targets under one history.

Exactness of ``--resume``: checkpoints hold the weights, the optimizer
moments, the scheduler state and every RNG state; the data position is the
step counter itself (batches are a pure function of seed, process, step and
micro-step). An interrupted run continued with ``--resume`` ends with the
same weights as an uninterrupted one (tests/train/test_train_loop.py).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from prefcli.errors import ConfigError
from prefcli.train.config import StageConfig, TrainConfig

# ---------------------------------------------------------------------------
# the forward pass over a PairBatch


def target_logits(
    vlm: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    pixel_values: torch.Tensor,
    image_index: torch.Tensor,
    image_feats: torch.Tensor | None = None,
) -> torch.Tensor:
    """Full-vocabulary next-token logits at each row's target position (the last real token).

    The same computation as ``PrefVLM.forward``, except that the vision tower
    runs once per distinct image of the batch (`pixel_values`) and the features
    are gathered to the image slots by `image_index`. `image_feats` (U, L, D):
    those features already computed (a frozen encoder, prefcli.train.frozen_features).
    """
    emb = vlm.text_model.get_input_embeddings()(input_ids)
    is_img = input_ids == vlm.image_token_id
    if bool(is_img.any()):
        feats = image_feats if image_feats is not None else vlm.image_features(pixel_values)  # (U, L, D)
        feats = feats[image_index].reshape(-1, emb.shape[-1])
        emb = vlm.scatter_images(emb, input_ids, feats)
    emb, mask = vlm.with_pref_tokens(emb, attention_mask, "right")
    out = vlm.run_text(emb, mask, use_cache=False)
    from prefcli.vlm.model import last_real_index

    idx = last_real_index(mask)
    hidden = out.last_hidden_state[torch.arange(mask.shape[0], device=mask.device), idx]
    return vlm.head(hidden).logits


class PairForward(nn.Module):
    """The trainable module Accelerate wraps (DDP needs the forward to go through ``__call__``)."""

    def __init__(self, vlm: Any) -> None:
        super().__init__()
        self.vlm = vlm

    def forward(self, input_ids, attention_mask, pixel_values, image_index, image_feats=None):  # noqa: D401
        return target_logits(self.vlm, input_ids, attention_mask, pixel_values, image_index, image_feats)


class AttributeForward(nn.Module):
    """Vision tower + connector + a linear probe: predicts an image's attribute vector (attributes stages)."""

    def __init__(self, vlm: Any, probe: nn.Module) -> None:
        super().__init__()
        self.vlm = vlm
        self.probe = probe

    def forward(self, pixel_values):  # noqa: D401
        feats = self.vlm.image_features(pixel_values)  # (N, L, D)
        return self.probe(feats.mean(1).float())


def make_probe(vlm: Any, out_dim: int, seed: int) -> nn.Module:
    """A seeded linear probe (the same one on a resumed run)."""
    d = int(vlm.core.config.text_config.hidden_size)
    g = torch.Generator().manual_seed(int(seed) + 7919)
    probe = nn.Linear(d, out_dim)
    with torch.no_grad():
        bound = 1.0 / math.sqrt(d)
        probe.weight.copy_(torch.rand(out_dim, d, generator=g) * 2 * bound - bound)
        probe.bias.zero_()
    return probe.to(vlm.device)


# ---------------------------------------------------------------------------
# evaluation


@torch.no_grad()
def score_tasks(
    vlm: Any,
    tasks: Sequence[Any],
    store: Any,
    *,
    history: bool = True,
    history_of: Callable[[int], list] | None = None,
    batch_tasks: int = 64,
) -> list[list[float]]:
    """Q(S, z) for every candidate of every task; `history_of(i)` replaces task i's history (the swap check)."""
    from prefcli.train.data import collate_sequences, eval_sequences
    from prefcli.vlm.losses import q_score  # the one formula for Q

    was_training = vlm.training
    vlm.eval()
    out: list[list[float]] = []
    try:
        for s in range(0, len(tasks), batch_tasks):
            chunk = tasks[s : s + batch_tasks]
            seqs, sizes = [], []
            for k, t in enumerate(chunk):
                hp = history_of(s + k) if history_of is not None else None
                ss = eval_sequences(vlm.encoder, t, history=history, history_pairs=hp)
                seqs += ss
                sizes.append(len(ss))
            b = collate_sequences(vlm.encoder, seqs, store).to(vlm.device)
            logits = target_logits(vlm, b.input_ids, b.attention_mask, b.pixel_values, b.image_index)
            q = q_score(logits[:, vlm.plus_id].float(), logits[:, vlm.minus_id].float()).cpu().tolist()
            i = 0
            for n in sizes:
                out.append(q[i : i + n])
                i += n
    finally:
        vlm.train(was_training)
    return out


def top1_correct(scores: Sequence[float], liked_index: int) -> bool:
    """A hit under the harness's rule (prefcli.harness.metrics.top1_hit): ties and a NaN liked score are misses."""
    from prefcli.harness.metrics import top1_hit

    return top1_hit(scores, liked_index)


def accuracy(vlm: Any, tasks: Sequence[Any], store: Any, **kw: Any) -> float:
    if not tasks:
        return float("nan")
    scores = score_tasks(vlm, tasks, store, **kw)
    return sum(top1_correct(s, t.liked_index) for s, t in zip(scores, tasks)) / len(tasks)


# ---------------------------------------------------------------------------
# optimizer and schedule


def lr_factor(step: int, total: int, warmup: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the base lr after `step` completed steps of a stage of `total` steps."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    span = max(1, total - warmup)
    t = min(1.0, (step - warmup) / span)
    if schedule == "linear":
        f = 1.0 - t
    else:
        f = 0.5 * (1.0 + math.cos(math.pi * t))
    return min_ratio + (1.0 - min_ratio) * f


def make_optimizer(params: list, cfg: TrainConfig, stage: StageConfig) -> tuple[Any, Any]:
    o = cfg.optim
    lr = stage.lr if stage.lr is not None else o.lr
    warm = stage.warmup_steps if stage.warmup_steps is not None else o.warmup_steps
    sched = stage.schedule or o.schedule
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=o.weight_decay, betas=tuple(o.betas), eps=o.eps)
    total = stage.steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warm, sched, o.min_lr_ratio))
    return opt, scheduler


def apply_stage(vlm: Any, cfg: TrainConfig, index: int) -> None:
    """Attach tokens if this or an earlier stage adds them, and set what trains."""
    from prefcli.vlm.model import set_trainable

    st = cfg.stages[index]
    if cfg.tokens_at(index) and vlm.pref_tokens is None:
        vlm.add_pref_tokens(cfg.tokens.n_tokens, cfg.tokens.init, seed=cfg.model.seed)
    set_trainable(
        vlm,
        base=st.train_base,
        lora=st.train_lora,
        vision=st.train_vision and cfg.model.train_vision,
        tokens=st.train_tokens,
    )


# ---------------------------------------------------------------------------
# data


def world_cache_dir() -> Path:
    """$PREFCLI_CACHE/worlds (one cache rule for weights, scores and worlds: prefcli.paths)."""
    from prefcli.paths import cache_subdir

    return cache_subdir("worlds")


def synthetic_dataset(world: dict, build: dict | None = None, root: Path | None = None, progress: bool = False) -> Path:
    """Write a synthetic world and build its dataset once (cached by the knobs' hash); return the dataset path."""
    import hashlib

    from prefcli.data.dataset import INFO_FILE
    from prefcli.data.pickapic import BuildParams
    from prefcli.data.pickapic import build as build_ds
    from prefcli.data.synthetic import WorldConfig, write_world

    w = dict(world)
    preset = w.pop("preset", "default")
    wcfg = WorldConfig.from_preset(preset, **w)
    try:
        params = BuildParams(**(build or {}))
    except TypeError as e:
        raise ConfigError(f"data.world_build: {e}") from None
    key = hashlib.sha256(json.dumps([wcfg.to_dict(), build or {}], sort_keys=True).encode()).hexdigest()[:16]
    root = (root or world_cache_dir()) / f"{preset}-{key}"
    ds = root / "dataset"
    if not (ds / INFO_FILE).is_file():
        write_world(root / "world", wcfg, progress=progress)
        build_ds(str(root / "world"), ds, params, progress=progress)
    return ds


def resolve_dataset(cfg: TrainConfig, data: str | os.PathLike | None) -> Path:
    if data is not None:
        return Path(data)
    if cfg.data.dataset:
        return Path(cfg.data.dataset)
    if cfg.data.world is not None:
        return synthetic_dataset(cfg.data.world, cfg.data.world_build)
    raise ConfigError(f"{cfg.source or cfg.name}: no dataset: pass --data DATASET or set data.dataset")


def trained_on_record(cfg: TrainConfig, ds: Any, ds_path: Path, world_dir: Path | None, data: Any) -> dict:
    """train_config.json: the resolved config, and what the run actually trained on.

    ``--data`` replaces the config's data, so ``data.world`` of the config may
    describe a world that was never used: ``_dataset`` / ``_world`` say what was.
    """
    rec = {**cfg.to_dict(), "_source": cfg.source, "_dataset": str(ds_path)}
    info = getattr(ds, "info", None) or {}
    rec["_dataset_info"] = {
        k: info.get(k) for k in ("name", "format_version", "source", "params", "counts") if k in info
    }
    world = None
    if world_dir is not None:
        try:
            world = {"dir": str(world_dir), **json.loads((Path(world_dir) / "world.json").read_text())["config"]}
        except (OSError, ValueError, KeyError):
            world = {"dir": str(world_dir)}
    rec["_world"] = world
    if data is not None:
        rec["data"]["dataset"] = str(ds_path)
        rec["data"]["world"] = None  # not the config's world: the dataset's (see _world)
        rec["data"]["world_build"] = {}
    return rec


def init_weights_dir(spec: str) -> Path:
    """The model folder of ``model.init_from``: a run, checkpoint or model folder, or a shipped tiny model."""
    from prefcli.train import pretrained
    from prefcli.vlm.folders import model_dir_of

    p = Path(spec)
    if not p.exists() and spec in pretrained.names():
        p = pretrained.path(spec)
    if not p.exists():
        raise ConfigError(
            f"model.init_from: {spec}: no such model folder (shipped tiny models: {', '.join(pretrained.names())})"
        )
    return model_dir_of(p)


def validation_groups(tasks: Sequence[Any], world: Any) -> list[int]:
    """Each validation task's taste group (a synthetic world), else its user as its own group."""
    if world is not None and all(world.knows(t.user_id) for t in tasks):
        return [world.group(t.user_id) for t in tasks]
    ids: dict[str, int] = {}
    return [ids.setdefault(str(t.user_id), len(ids)) for t in tasks]


def validation_metrics(
    vlm: Any,
    tasks: Sequence[Any],
    store: Any,
    groups: Sequence[int],
    swap_histories: Sequence[Any] | None,
    history: bool,
) -> dict:
    """val_acc (raw), val_balanced (mean over groups) and, for a history stage, the same with each task given
    `swap_histories[i]`, the history of a task from another group (val_swap, val_swap_balanced).
    Hits use the harness's tie rule."""
    from prefcli.harness.world import balanced, hit

    out: dict[str, Any] = {"val_tasks": len(tasks), "val_acc": float("nan"), "val_balanced": None}
    hits: list[bool] = []
    swap_hits: list[bool] | None = None
    if tasks:
        scores = score_tasks(vlm, tasks, store, history=history)
        hits = [hit(s, t.liked_index) for s, t in zip(scores, tasks)]
        out.update(val_acc=sum(hits) / len(hits), val_balanced=balanced(hits, groups))
        if swap_histories is not None and history:
            sw = score_tasks(vlm, tasks, store, history=True, history_of=lambda i: swap_histories[i])
            swap_hits = [hit(s, t.liked_index) for s, t in zip(sw, tasks)]
            out.update(val_swap=sum(swap_hits) / len(swap_hits), val_swap_balanced=balanced(swap_hits, groups))
    out["_hits"] = (hits, swap_hits)  # for the multi-process reduction; never logged
    return out


def _reduce_validation(acc: Any, res: dict, groups: Sequence[int], n_groups: int) -> dict:
    """Sum hits per group over processes, then recompute the raw and balanced numbers."""
    hits, swap = res.pop("_hits")
    ng = int(n_groups)
    t = torch.zeros(3, ng, device=acc.device)
    for h, g in zip(hits, groups):
        t[0, g] += float(h)
        t[2, g] += 1.0
    for h, g in zip(swap or [], groups):
        t[1, g] += float(h)
    t = acc.reduce(t, reduction="sum")
    n = t[2]
    keep = n > 0
    out = {
        "val_tasks": int(n.sum()),
        "val_acc": float(t[0].sum() / n.sum()) if n.sum() else float("nan"),
        "val_balanced": float((t[0][keep] / n[keep]).mean()) if keep.any() else None,
    }
    if swap is not None:
        out["val_swap"] = float(t[1].sum() / n.sum())
        out["val_swap_balanced"] = float((t[1][keep] / n[keep]).mean())
    return out


# ---------------------------------------------------------------------------
# the loop


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    stopped_early: bool
    final_val_acc: float | None
    samples_per_s: float
    seconds: float
    model_dir: Path | None
    history: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "out_dir": str(self.out_dir),
            "steps": self.steps,
            "stopped_early": self.stopped_early,
            "final_val_acc": self.final_val_acc,
            "pairs_per_s": self.samples_per_s,
            "seconds": self.seconds,
            "model_dir": str(self.model_dir) if self.model_dir else None,
        }


def val_shown(val_acc: float | None, balanced: float | None = None, swapped: float | None = None) -> str:
    """The validation numbers as the progress bar and the log name them."""
    if val_acc is None:
        return ""
    return (
        f"val top-1 {val_acc:.3f}"
        + (f", group-balanced {balanced:.3f}" if balanced is not None else "")
        + (f", history swapped {swapped:.3f}" if swapped is not None else "")
    )


def train(
    cfg: TrainConfig,
    *,
    data: str | os.PathLike | None = None,
    out: str | os.PathLike = "runs/train",
    resume: bool = False,
    max_steps: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Run `cfg`'s stages; write checkpoints, metrics.jsonl and the final model under `out`."""
    say = log or (lambda s: None)
    r = cfg.run
    if r.num_threads:
        torch.set_num_threads(r.num_threads)
    # Bit-for-bit reproducible runs (same config, data, seed, machine and thread count). Without it,
    # the backward of the image-feature gather (index_put_ with accumulate) uses parallel atomic
    # float adds on CPU once a batch is large enough and two or more threads run: history models
    # diverged between identical runs from the first steps of the main stage. Warn-only: an op
    # without a deterministic kernel (some CUDA ones) warns instead of failing.
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    if r.deterministic:
        if torch.cuda.is_available():
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    from prefcli.lock import output_lock

    # One training per --out at a time: the main process holds its lock file.
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0)
    try:
        with output_lock(out) if rank == 0 else contextlib.nullcontext():
            return _train(cfg, data=data, out=Path(out), resume=resume, max_steps=max_steps, progress=progress, say=say)
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def _train(
    cfg: TrainConfig,
    *,
    data: Any,
    out: Path,
    resume: bool,
    max_steps: int | None,
    progress: bool,
    say: Callable[[str], None],
) -> TrainResult:
    from accelerate.utils import set_seed

    from prefcli.data.dataset import Dataset
    from prefcli.harness.world import swap_donors
    from prefcli.readable import per_second
    from prefcli.train import checkpoint as ck
    from prefcli.train.common import (
        MetricsLog,
        check_resume_config,
        checkpoint_model,
        make_accelerator,
        resume_point,
        training_progress,
    )
    from prefcli.train.data import PixelStore, TrainSampler, collate_pairs, load_eval_tasks
    from prefcli.train.frozen_features import FrozenFeatures
    from prefcli.train.toy_losses import history_contrast
    from prefcli.vlm.losses import preference_loss
    from prefcli.vlm.model import build_model

    r = cfg.run
    acc = make_accelerator(r, out)
    main = acc.is_main_process
    accum = cfg.grad_accum_for(acc.num_processes)
    per_step = r.per_device_batch * accum * acc.num_processes

    ckpt_root = out / ck.CHECKPOINTS_DIR
    last = resume_point(out, resume=resume, main=main, say=say)

    ds_path = resolve_dataset(cfg, data) if main else None
    acc.wait_for_everyone()
    ds_path = ds_path or resolve_dataset(cfg, data)
    ds = Dataset.open(ds_path)

    # The data first (pure reads, no global RNG): a bad dataset or an n_ref no user can give
    # fails in one line before a model is built.
    by_user = ds.pairs_by_user("train")
    try:
        sampler = TrainSampler(by_user, cfg.data.n_ref, seed=r.seed, shuffle_history=cfg.data.shuffle_history)
    except ValueError:
        longest = max((len(v) for v in by_user.values()), default=0)
        raise ConfigError(
            f"{cfg.source or cfg.name}: data.n_ref: {cfg.data.n_ref} history pairs plus a target need "
            f"{cfg.data.n_ref + 1} training pairs per user, but the most any user of {ds_path} has is "
            f"{longest}; lower data.n_ref to at most {max(0, longest - 1)}"
        ) from None
    from prefcli.data.dataset import n_ref_variants

    # Validate at the training N_ref, or the largest history the dataset materialized below it.
    fits = [k for k in n_ref_variants(ds.n_ref) if k <= max(1, cfg.data.n_ref)]
    val_tasks = load_eval_tasks(
        ds, cfg.data.val_split, n_ref=max(fits) if fits else None, max_tasks=cfg.data.val_max_tasks, seed=r.seed
    )
    set_seed(r.seed)
    try:
        vlm = build_model(cfg.vlm_spec(device=str(acc.device)))
    except ConfigError as e:  # a model the config cannot build: name the config it came from
        raise ConfigError(f"{cfg.source or cfg.name}: model: {e}") from None
    if cfg.model.init_from and last is None:
        # A curriculum across worlds (toy): start from a model trained elsewhere; a resumed run
        # takes its weights from the checkpoint instead.
        ck.load_weights_into(vlm, init_weights_dir(cfg.model.init_from))
    if cfg.model.gradient_checkpointing:
        vlm.core.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    store = PixelStore(ds, vlm.preprocess, cfg.data.pixel_cache_mb)
    from prefcli.harness.world import World, find_world

    world_dir = find_world(ds)
    val_world = World(world_dir, ds.users("train")) if world_dir is not None else None
    # Groups and swap donors over all validation tasks, then each process keeps its share.
    all_groups = validation_groups(val_tasks, val_world)
    all_donors = swap_donors(val_tasks, all_groups) if val_tasks else []
    mine = list(range(acc.process_index, len(val_tasks), acc.num_processes))
    donor_tasks = val_tasks
    val_groups = [all_groups[i] for i in mine]
    val_donor_hist = [donor_tasks[all_donors[i]].history for i in mine]
    val_tasks = [val_tasks[i] for i in mine]

    total = cfg.total_steps
    stop = min(total, max_steps) if max_steps else total
    start = 0
    stage_idx = 0
    if last is not None:
        start = int(ck.read_state(last)["step"])
        if start > total:
            raise ConfigError(
                f"{last / ck.STATE_FILE}: step {start} lies beyond this config's {total} steps; "
                f"it belongs to another run (train into a new --out)"
            )
        stage_idx = cfg.stage_at(start) if start > 0 else 0

    train_images = [i for p in ds.pairs("train") for i in (p.liked_image_id, p.disliked_image_id)]
    attributes = None
    if any(s.kind == "attributes" for s in cfg.stages):
        from prefcli.train.data import AttributeTargets

        # The dataset's world found above (beside it, or where `prefcli data pickapic --source WORLD` recorded it).
        world_dir = Path(cfg.data.attributes) if cfg.data.attributes else world_dir or Path(ds_path).parent / "world"
        if not (world_dir / "world.json").is_file():
            raise ConfigError(
                f"{cfg.source or cfg.name}: an attributes stage needs a synthetic world; "
                f"{world_dir} has none (set data.attributes)"
            )
        attributes = AttributeTargets(world_dir, train_images)
    probe: list = [None]
    frozen: list = [None, None]  # FrozenFeatures of the stage at index 1 (built at its first step)

    def setup(index: int):
        apply_stage(vlm, cfg, index)
        params = vlm.trainable_parameters()
        if cfg.stages[index].kind == "attributes":
            probe[0] = make_probe(vlm, attributes.dim, cfg.model.seed)
            params = params + list(probe[0].parameters())
            module = AttributeForward(vlm, probe[0])
        else:
            probe[0] = None
            module = PairForward(vlm)
        if not params:
            raise ConfigError(f"{cfg.source or cfg.name}: stages[{index}] leaves nothing trainable")
        opt, sch = make_optimizer(params, cfg, cfg.stages[index])
        return opt, sch, params, module

    optimizer, scheduler, params, module = setup(stage_idx)
    state: dict[str, Any] = {}
    if last is not None:
        state = ck.restore_checkpoint(last, vlm, optimizer, acc.process_index, aux=probe[0])
        ck.restore_scheduler(scheduler, state, last)
        say(f"resumed from {last} (step {start}, stage {cfg.stages[stage_idx].name})")
    model, optimizer = acc.prepare(module, optimizer)

    if main:
        out.mkdir(parents=True, exist_ok=True)
        from prefcli.atomic import write_text

        saved = json.loads(json.dumps(trained_on_record(cfg, ds, ds_path, world_dir, data), default=str))
        if last is not None:
            check_resume_config(out, saved, cfg, ck.CONFIG_FILE)
        write_text(out / ck.CONFIG_FILE, json.dumps(saved, indent=2, allow_nan=False))
        if r.trackers:
            acc.init_trackers(cfg.name, config={"lr": cfg.optim.lr, "steps": total})
    metrics = MetricsLog(out / "metrics.jsonl", main, start if last is not None else None)

    def evaluate() -> dict:
        """Raw and group-balanced top-1 on the validation tasks, and with swapped histories (harness tie rule)."""
        history = cfg.stages[stage_idx].history
        res = validation_metrics(vlm, val_tasks, store, val_groups, val_donor_hist if history else None, history)
        if acc.num_processes > 1:  # every process scored its own share; combine per group
            return _reduce_validation(acc, res, val_groups, max(all_groups, default=0) + 1)
        res.pop("_hits")
        return res

    def save(step: int) -> None:
        st = {
            "step": step,
            "stage": stage_idx,
            "stage_name": cfg.stages[stage_idx].name,
            "scheduler": scheduler.state_dict(),
            "config_name": cfg.name,
            "per_step_pairs": per_step,
            "val_acc": last_val,
        }
        meta = {
            "train_config": cfg.name,
            "step": step,
            "dataset": str(ds_path),
            "n_ref": cfg.data.n_ref,
            "history": cfg.stages[stage_idx].history,
        }
        if main:
            path = ck.save_checkpoint(
                ckpt_root, step, vlm, optimizer, st, process_index=0, keep_last=r.keep_last, metadata=meta, aux=probe[0]
            )
        acc.wait_for_everyone()
        if not main:
            ck.save_rng_only(ckpt_root / ck.checkpoint_name(step), acc.process_index)
        acc.wait_for_everyone()
        if main:
            say(f"checkpoint {path}")

    last_val: float | None = state.get("val_acc")
    plus_id, minus_id = vlm.plus_id, vlm.minus_id
    t0 = time.perf_counter()
    pairs_done = 0
    run_loss: dict[str, float] = {}
    n_loss = 0
    model.train()
    with training_progress(progress and main) as bar:
        task = bar.add_task(
            f"training {cfg.name} ({cfg.stages[stage_idx].name})",
            total=stop,
            completed=start,
            loss="-",
            acc=val_shown(last_val),
            sps="-",
        )
        for step in range(start + 1, stop + 1):
            si = cfg.stage_at(step)
            if si != stage_idx:
                stage_idx = si
                optimizer, scheduler, params, module = setup(si)
                model, optimizer = acc.prepare(module, optimizer)
                model.train()
                say(f"stage {cfg.stages[si].name} from step {step}")
                bar.update(task, description=f"training {cfg.name} ({cfg.stages[si].name})")
            stage = cfg.stages[stage_idx]
            for micro in range(accum if stage.kind == "pairs" else 0):
                swap = stage.loss_swap > 0
                samples = sampler.batch(
                    step, micro, acc.process_index, r.per_device_batch, history=stage.history, swap=swap
                )
                b = collate_pairs(vlm.encoder, samples, store).to(acc.device)
                if frozen[1] != stage_idx:  # in training mode, as the steps run the encoder
                    frozen[:] = [
                        FrozenFeatures.for_stage(vlm, store, train_images, cfg.data.feature_cache_mb),
                        stage_idx,
                    ]
                feats = frozen[0].get(b.image_ids) if frozen[0] is not None else None
                sync = acc.no_sync(model) if (micro < accum - 1 and acc.num_processes > 1) else contextlib.nullcontext()
                with sync, acc.autocast():
                    logits = model(b.input_ids, b.attention_mask, b.pixel_values, b.image_index, feats)
                    n = b.n_pairs
                    terms = preference_loss(
                        logits[:n], logits[n : 2 * n], plus_id, minus_id, use_base=stage.loss_base, use_cp=stage.loss_cp
                    )
                    loss_total = terms.total
                    extra = {}
                    if swap and logits.shape[0] == 4 * n:
                        hs = history_contrast(
                            logits[:n], logits[n : 2 * n], logits[2 * n : 3 * n], logits[3 * n :], plus_id, minus_id
                        )
                        loss_total = loss_total + stage.loss_swap * hs
                        extra = {"loss_swap": float(hs.detach()), "loss": float(loss_total.detach())}
                    acc.backward(loss_total / accum)
                for k, v in {**terms.as_floats(), **extra}.items():
                    run_loss[k] = run_loss.get(k, 0.0) + v / accum
            if stage.kind == "attributes":
                for micro in range(accum):
                    ids, target = attributes.batch(
                        sampler.rng(step, micro, acc.process_index), cfg.data.attributes_batch
                    )
                    pv = store.get(ids).to(acc.device)
                    sync = (
                        acc.no_sync(model)
                        if (micro < accum - 1 and acc.num_processes > 1)
                        else contextlib.nullcontext()
                    )
                    with sync, acc.autocast():
                        pred = model(pv)
                        loss = torch.nn.functional.mse_loss(pred.float(), target.to(pred.device))
                        acc.backward(loss / accum)
                    run_loss["loss"] = run_loss.get("loss", 0.0) + float(loss.detach()) / accum
                    run_loss["loss_attributes"] = run_loss["loss"]
            n_loss += 1
            if cfg.optim.max_grad_norm > 0:
                acc.clip_grad_norm_(params, cfg.optim.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            pairs_done += per_step
            elapsed = time.perf_counter() - t0
            sps = pairs_done / elapsed if elapsed > 0 else 0.0
            if r.log_every and (step % r.log_every == 0 or step == stop):
                rec = {
                    "step": step,
                    "stage": stage.name,
                    "lr": scheduler.get_last_lr()[0],
                    **{k: v / n_loss for k, v in run_loss.items()},
                    "pairs_per_s": round(sps, 2),
                    "elapsed_s": round(elapsed, 2),
                }
                metrics.log(rec)
                if r.trackers:
                    acc.log({k: v for k, v in rec.items() if isinstance(v, (int, float))}, step=step)
                bar.update(task, loss=f"{rec['loss']:.4f}", sps=per_second(sps))
                run_loss, n_loss = {}, 0
            bar.update(task, completed=step)
            stage_end = step == cfg.stage_start(stage_idx) + stage.steps
            if stage.kind == "pairs" and ((r.eval_every and step % r.eval_every == 0) or step == stop or stage_end):
                vres = evaluate()
                last_val = vres["val_acc"]
                metrics.log({"step": step, "stage": stage.name, **vres})
                shown = val_shown(last_val, vres.get("val_balanced"), vres.get("val_swap_balanced"))
                bar.update(task, acc=shown)
                say(f"step {step}: {shown}")
            if (r.checkpoint_every and step % r.checkpoint_every == 0) or step == stop:
                save(step)
    seconds = time.perf_counter() - t0
    finished = stop == total
    # Stopped early (--max-steps), the newest checkpoint's model/ is the model this run wrote.
    model_dir = checkpoint_model(ckpt_root, stop) if main and not finished else None
    if main and finished:
        from prefcli.vlm.checkpoint import save_vlm

        model_dir = save_vlm(
            vlm,
            out / ck.MODEL_DIR,
            metadata={
                "train_config": cfg.name,
                "steps": total,
                "dataset": str(ds_path),
                "val_acc": last_val,
                "n_ref": cfg.data.n_ref,
                "history": cfg.stages[-1].history,
            },
        )
    acc.wait_for_everyone()
    if r.trackers:
        acc.end_training()
    pairs_s = pairs_done / seconds if seconds > 0 else 0.0
    return TrainResult(out, stop, not finished, last_val, pairs_s, seconds, model_dir, metrics.records)
