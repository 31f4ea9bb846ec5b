"""ReNO's loop: optimize the initial latent of a one-step generator against weighted rewards.

Every fact below follows ExplainableML/ReNO, training/trainer.py (`LatentNoiseTrainer.train`)
and training/optim.py:

- the latent is the only parameter (main.py lines 111-113: `torch.nn.Parameter(init_latents)`);
- each iteration generates the image with gradients, then the reward loss is
  Σ_i w_i · (c_i − reward_i) (trainer.py lines 99-108, c_i per reward in rewards/*.py);
- the regularizer is 0.01 · (½‖z‖² − (d − 1) · log‖z‖), computed in fp32, with
  d = the latent's size without the batch axis (lines 63, 109-118);
- the best image is the one with the lowest *reward* loss, the regularizer left
  out (lines 108, 121-125); the first iteration's image is the unguided one (86-94);
- the last iteration only evaluates: no step after it (line 126);
- gradient-norm clip 0.1 on the latent (line 128), SGD lr 5, momentum 0.9,
  Nesterov (optim.py line 10, arguments.py lines 23-36).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: ReNO's defaults (arguments.py): lr 5.0, grad clip 0.1, reg weight 0.01, SGD momentum 0.9 with Nesterov.
LR = 5.0
GRAD_CLIP = 0.1
REG_WEIGHT = 0.01
MOMENTUM = 0.9


@dataclass
class RewardTerm:
    """One weighted reward: loss term w · (offset − reward(pixels))."""

    name: str
    weight: float
    offset: float
    fn: Callable[[Any], Any]  # (B, 3, H, W) pixels in [0, 1] -> (B,) reward tensor with gradients
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Iteration:
    index: int
    rewards: dict[str, float]
    reward_loss: float
    regularizer: float
    loss: float
    latent_norm: float
    grad_norm: float | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"iteration": self.index, "rewards": self.rewards, "reward_loss": self.reward_loss, "regularizer": self.regularizer,
                "loss": self.loss, "latent_norm": self.latent_norm, "grad_norm": self.grad_norm, "seconds": self.seconds}  # fmt: skip


@dataclass
class Result:
    initial: Any  # (1, 3, H, W) image tensor of the unguided latent
    best: Any  # the image with the lowest reward loss
    best_iteration: int
    iterations: list[Iteration]
    snapshots: list[tuple[int, Any]]  # (iteration, image) every `keep_every` iterations
    best_latent: Any = None


def regularizer(z: Any, weight: float = REG_WEIGHT) -> Any:
    """weight · (½‖z‖² − (d − 1) · log‖z‖) in fp32: the negative log-density of ‖z‖ under a d-dim standard normal."""
    import torch

    d = math.prod(z.shape[1:])
    norm = torch.linalg.vector_norm(z.float())
    return weight * (0.5 * norm**2 - (d - 1) * torch.log(norm))


def reward_loss(image: Any, terms: list[RewardTerm]) -> tuple[Any, dict[str, float]]:
    """Σ w_i · (c_i − reward_i) and each reward's value (the mean over the batch)."""
    total = None
    values: dict[str, float] = {}
    for term in terms:
        r = term.fn(image).float().mean()
        values[term.name] = float(r.detach())
        part = term.weight * (term.offset - r)
        total = part if total is None else total + part
    if total is None:
        raise ValueError("no reward terms")
    return total, values


def optimize(
    forward: Callable[[Any], Any],
    z0: Any,
    terms: list[RewardTerm],
    *,
    steps: int = 30,
    lr: float = LR,
    reg_weight: float = REG_WEIGHT,
    grad_clip: float = GRAD_CLIP,
    keep_every: int | None = None,
    on_iteration: Callable[[Iteration], None] | None = None,
) -> Result:
    """Run `steps` iterations (steps − 1 updates) from latent z0; `forward(z)` is the generator with gradients."""
    import torch

    if steps < 1:
        raise ValueError("steps must be at least 1")
    latent = torch.nn.Parameter(z0.detach().clone().float())
    opt = torch.optim.SGD([latent], lr=lr, momentum=MOMENTUM, nesterov=True)
    best_loss = math.inf
    best = initial = best_latent = None
    best_it = 0
    log: list[Iteration] = []
    snaps: list[tuple[int, Any]] = []
    for it in range(steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        image = forward(latent)
        if initial is None:
            initial = image.detach().float().cpu()
        rl, values = reward_loss(image, terms)
        reg = regularizer(latent, reg_weight)
        total = rl.float() + reg
        rl_value = float(rl.detach())
        norm = float(torch.linalg.vector_norm(latent.detach().float()))  # before the step, as ReNO logs it
        if rl_value < best_loss:  # strictly lower: the earliest of equal images is kept
            best_loss, best, best_it = rl_value, image.detach().float().cpu(), it
            best_latent = latent.detach().clone().cpu()
        if keep_every and it % keep_every == 0:
            snaps.append((it, image.detach().float().cpu()))
        grad_norm = None
        if it != steps - 1:
            total.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(latent, grad_clip))
            opt.step()
        rec = Iteration(it, values, rl_value, float(reg.detach()), float(total.detach()),
                        norm, grad_norm, time.perf_counter() - t0)  # fmt: skip
        log.append(rec)
        if on_iteration is not None:
            on_iteration(rec)
        del image, rl, reg, total
    return Result(
        initial=initial, best=best, best_iteration=best_it, iterations=log, snapshots=snaps, best_latent=best_latent
    )
