"""`prefcli generate` without the CLI: load once, optimize each seed, write its files.

Per seed, next to each other in --out (stem = prompt slug + seed):
  STEM.png           the image with the best reward loss (ReNO's rule)
  STEM.unguided.png  the same seed's image before any step
  STEM.json          prompt, seed, generator and reward weights with their revisions,
                     options, every iteration's reward terms and loss, judge scores
  STEM.strip.png     with save_every K: iterations 0, K, 2K, ... and the best image
Every file is written atomically; a seed whose sidecar says it finished with the
same settings is not optimized again (an interrupted --n run resumes).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prefcli.errors import ConfigError
from prefcli.generate import reno
from prefcli.generate.rewards import PRESETS

SIDECAR_VERSION = 1


@dataclass
class GenerateConfig:
    prompt: str
    model: str = "sd-turbo"
    rewards: list[tuple[str, float]] = field(default_factory=list)  # empty: the preset's
    preset: str | None = None  # None: "paper" with a history, else "reno"
    steps: int | None = None  # None: the preset's
    lr: float = reno.LR
    reg_weight: float = reno.REG_WEIGHT
    grad_clip: float = reno.GRAD_CLIP
    seed: int = 0
    n: int = 1
    out: str = "generated"
    save_every: int | None = None
    device: str = "cpu"
    dtype: str | None = None
    weights: dict[str, str] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    judges: list[str] = field(default_factory=list)
    likes: str | None = None
    dislikes: str | None = None
    history_prompts: str | None = None
    overwrite: bool = False  # replace files at the output names that prefcli did not write

    def resolved(self) -> GenerateConfig:
        """The preset filled in: rewards and steps are always explicit afterwards."""
        preset = PRESETS[self.preset or ("paper" if self.likes or self.dislikes else "reno")]
        rewards = list(self.rewards) or list(preset.rewards)
        steps = self.steps if self.steps is not None else preset.steps
        return GenerateConfig(**{**asdict(self), "rewards": rewards, "steps": steps, "preset": preset.name})


def check_generate_numbers(*, seed: int, n: int = 1, lr: float | None = None, dtype: str | None) -> None:
    """The numbers of a generate run, refused before a model loads: a seed range torch can take, an lr
    SGD can step with (NaN or infinity would make every image the unguided one), a float dtype."""
    from prefcli.bounds import check_finite, check_seed
    from prefcli.devices import normalize_dtype

    check_seed(seed, count=n)
    if lr is not None:
        check_finite(lr, "--lr", low=0.0, low_open=True, high=1e4)
    normalize_dtype(dtype)


def slug(prompt: str, limit: int = 48) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:limit].strip("-")
    return s or "prompt"


def to_pil(image: Any) -> Any:
    """(1, 3, H, W) in [0, 1] -> PIL RGB, rounded as diffusers' numpy_to_pil does."""
    from PIL import Image

    arr = (image[0].detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    return Image.fromarray(arr, "RGB")


def save_png(image: Any, path: Path) -> None:
    """PNG, or JPEG (quality 95) for a .jpg path, written atomically."""
    from prefcli.atomic import write_bytes

    buf = io.BytesIO()
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(buf, format="JPEG", quality=95)
    else:
        image.save(buf, format="PNG")
    write_bytes(path, buf.getvalue())


def _rel(path: Path, sidecar: Path) -> str:
    """A file's name as seen from its sidecar's folder."""
    import os

    return os.path.relpath(path, sidecar.parent)


def history_ids(history: Any) -> list[dict[str, str | None]]:
    if history is None:
        return []
    return [
        {"liked": p.liked.image_id[:16], "disliked": p.disliked.image_id[:16], "prompt": p.prompt}
        for p in history.pairs
    ]


def settings_key(record: dict[str, Any]) -> str:
    """sha256 (16 hex) of everything that decides the optimized image."""
    keep = {k: record[k] for k in ("prompt", "seed", "generator", "rewards", "optimizer", "history")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_sidecar(side: Path) -> dict[str, Any] | None:
    """The prefcli sidecar at `side`: {} when there is none, None when the file there is not one prefcli wrote."""
    import os

    from prefcli.jsonio import read_json

    if not os.path.lexists(side):
        return {}
    try:
        old = read_json(side, error=ConfigError)
    except ConfigError:
        return None
    if not isinstance(old, dict) or not isinstance(old.get("settings"), str) or "version" not in old:
        return None
    return old


def refuse_foreign(targets: list[Path], side: Path, old: dict[str, Any] | None, overwrite: bool) -> None:
    """ConfigError for the first of `targets` (or the sidecar) that exists and that no prefcli sidecar claims."""
    import os

    files = (old or {}).get("files")
    claimed = {
        os.path.normpath(side.parent / f)
        for f in (files.values() if isinstance(files, dict) else ())
        if isinstance(f, str)
    }
    foreign = [side] if old is None else []
    foreign += [p for p in targets if os.path.lexists(p) and os.path.normpath(p) not in claimed]
    if foreign and not overwrite:
        raise ConfigError(
            f"{foreign[0]}: exists and was not written by prefcli (no prefcli sidecar lists it); refusing to "
            f"replace it: choose another --out, or pass --overwrite to replace it"
        )


@dataclass
class Session:
    """A loaded generator with its rewards and judges, reused across seeds and prompts."""

    generator: Any
    rewards: list[Any]
    judges: list[Any]
    history: Any
    device: str

    def close(self) -> None:
        self.generator = None
        self.rewards = []
        self.judges = []


def load_history(
    likes: str | None, dislikes: str | None, history_prompts: str | None
) -> tuple[Any, list[tuple[str, str]]]:
    if likes is None and dislikes is None:
        return None, []
    from prefcli.data.folders import history_from_folders

    return history_from_folders(likes, dislikes, history_prompts)


def open_session(cfg: GenerateConfig, history: Any = None, generator: Any = None) -> Session:
    """Check the rewards and judges, then load the generator and condition every scorer once."""
    from prefcli.generate.pipelines import load_generator
    from prefcli.generate.rewards import load_scorers

    names = [n for n, _ in cfg.rewards]
    if not names:
        raise ConfigError("no reward: give --reward NAME=WEIGHT or a --preset")
    both = sorted(set(names) & set(cfg.judges))
    if both:
        raise ConfigError(f"--judge {', '.join(both)}: a judge must be held out, but it is also a --reward")
    rewards = load_scorers(names, weights=cfg.weights, options=cfg.options, device=cfg.device, history=history,
                           need_differentiable=True, role="reward")  # fmt: skip
    for ls, (_, w) in zip(rewards, cfg.rewards):
        ls.weight = w
    judges = load_scorers(cfg.judges, weights=cfg.weights, options=cfg.options, device=cfg.device, history=history,
                          need_differentiable=False, role="judge")  # fmt: skip
    gen = generator or load_generator(cfg.model, device=cfg.device, dtype=cfg.dtype)
    return Session(gen, rewards, judges, history, cfg.device)


def _strip(
    snapshots: list[tuple[int, Any]], best: Any, best_it: int, log: list[reno.Iteration], path: Path, title: str
) -> None:
    from prefcli.sheet import contact_sheet

    items = []
    for it, img in snapshots:
        items.append((to_pil(img), f"it {it}\nloss {log[it].reward_loss:.4g}"))
    items.append((to_pil(best), f"best: it {best_it}\nloss {log[best_it].reward_loss:.4g}"))
    thumb = max(128, min(256, int(best.shape[-1])))  # small images are upscaled so captions fit
    contact_sheet(items, path, thumb=thumb, columns=len(items), title=title)


def generate_seed(
    session: Session,
    cfg: GenerateConfig,
    prompt: str,
    seed: int,
    out: Path,
    stem: str,
    *,
    on_iteration: Callable[[reno.Iteration], None] | None = None,
    extra: dict[str, Any] | None = None,
    paths: dict[str, Path] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Optimize one (prompt, seed) and write its files; returns (sidecar, generated_now).

    `paths` may place the "image", "unguided" and "sidecar" files elsewhere (the
    bench's hpsv2 layout); a .jpg suffix writes JPEG."""
    import torch

    from prefcli import __version__
    from prefcli.atomic import write_text
    from prefcli.generate.rewards import judge, reward_terms
    from prefcli.harness.results import clean_nan

    gen = session.generator
    record: dict[str, Any] = {
        "version": SIDECAR_VERSION,
        "prompt": prompt,
        "seed": seed,
        "generator": gen.ident.as_dict(),
        "rewards": [
            {**ls.ident(), "weight": ls.weight, "offset": t.offset}
            for ls, t in zip(session.rewards, reward_terms(session.rewards, prompt))
        ],
        "optimizer": {
            "steps": cfg.steps,
            "lr": cfg.lr,
            "momentum": reno.MOMENTUM,
            "nesterov": True,
            "grad_clip": cfg.grad_clip,
            "reg_weight": cfg.reg_weight,
            "optimizer": "sgd",
            "preset": cfg.preset,
        },  # fmt: skip
        "history": history_ids(session.history),
        "judges": [ls.ident() for ls in session.judges],
    }
    record["settings"] = settings_key(record)
    paths = paths or {}
    side = paths.get("sidecar", out / f"{stem}.json")
    final_png = paths.get("image", out / f"{stem}.png")
    unguided_png = paths.get("unguided", out / f"{stem}.unguided.png")
    strip = out / f"{stem}.strip.png"
    old = read_sidecar(side)
    if old:
        if (
            old.get("settings") == record["settings"]
            and old.get("done")
            and final_png.is_file()
            and unguided_png.is_file()
        ):
            return old, False
        if old.get("settings") != record["settings"] and old.get("done"):
            raise ConfigError(f"{side}: holds a result made with other settings; choose another --out to keep both")
    refuse_foreign([final_png, unguided_png] + ([strip] if cfg.save_every else []), side, old, cfg.overwrite)
    # Claimed before anything is written: a run killed half-way leaves files the next run knows as prefcli's.
    planned = {"image": _rel(final_png, side), "unguided": _rel(unguided_png, side)} | (
        {"strip": strip.name} if cfg.save_every else {}
    )
    write_text(
        side, json.dumps({**record, **(extra or {}), "files": planned, "done": False}, indent=2, default=str) + "\n"
    )

    cond = gen.encode(prompt)
    terms = reward_terms(session.rewards, prompt)
    t0 = time.perf_counter()
    res = reno.optimize(
        lambda z: gen.forward(z, cond), gen.init_latent(seed), terms,
        steps=cfg.steps, lr=cfg.lr, reg_weight=cfg.reg_weight, grad_clip=cfg.grad_clip,
        keep_every=cfg.save_every, on_iteration=on_iteration,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    unguided, final = to_pil(res.initial), to_pil(res.best)
    save_png(unguided, unguided_png)
    save_png(final, final_png)
    files = {"image": _rel(final_png, side), "unguided": _rel(unguided_png, side)}
    if cfg.save_every:
        _strip(res.snapshots, res.best, res.best_iteration, res.iterations, strip, f"{prompt[:60]} · seed {seed}")
        files["strip"] = strip.name
    judged = judge(session.judges, {"unguided": unguided, "final": final}, prompt) if session.judges else {}
    first, best = res.iterations[0], res.iterations[res.best_iteration]
    record.update(
        files=files,
        best_iteration=res.best_iteration,
        unguided={"rewards": first.rewards, "reward_loss": first.reward_loss},
        final={"rewards": best.rewards, "reward_loss": best.reward_loss},
        judge_scores=judged,
        iterations=[it.as_dict() for it in res.iterations],
        seconds=seconds,
        seconds_per_iteration=seconds / max(1, len(res.iterations)),
        peak_gpu_memory_bytes=int(torch.cuda.max_memory_allocated())
        if torch.cuda.is_available() and str(session.device).startswith("cuda")
        else None,
        prefcli_version=__version__,
        done=True,
        **(extra or {}),
    )
    write_text(side, json.dumps(clean_nan(record), indent=2, default=str, allow_nan=False) + "\n")
    return record, True


def generate(cfg: GenerateConfig, *, on_iteration=None, on_seed=None, generator: Any = None) -> list[dict[str, Any]]:
    """Every seed of `cfg` (seed, seed+1, ... n of them); returns their sidecars."""
    cfg = cfg.resolved()
    if cfg.steps < 1:
        raise ConfigError(f"--steps must be at least 1, got {cfg.steps}")
    if cfg.n < 1:
        raise ConfigError(f"--n must be at least 1, got {cfg.n}")
    if cfg.save_every is not None and cfg.save_every < 1:
        raise ConfigError(f"--save-every must be at least 1, got {cfg.save_every}")
    history, bad = load_history(cfg.likes, cfg.dislikes, cfg.history_prompts)
    session = open_session(cfg, history, generator)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for i in range(cfg.n):
        seed = cfg.seed + i
        rec, fresh = generate_seed(session, cfg, cfg.prompt, seed, out, f"{slug(cfg.prompt)}-seed{seed}",
                                   on_iteration=on_iteration, extra={"skipped_history": bad} if bad else None)  # fmt: skip
        results.append(rec)
        if on_seed is not None:
            on_seed(rec, fresh)
    return results
