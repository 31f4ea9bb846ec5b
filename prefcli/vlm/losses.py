"""The training losses of the preference-token model (docs/architecture.md), exactly.

A training pair shares one context S and differs only in the target: the
liked image z_pos and the disliked image z_neg. From the next-token logits at
each target position (full vocabulary, shape (B, V)) with M+ = logit of "+"
and M- = logit of "-":

- L_base = 1/2 [CE(M(S, z_pos), "+") + CE(M(S, z_neg), "-")]
  CE is the language-model cross entropy of the label token over the *full
  vocabulary* next-token distribution (batch mean), as in the authors'
  ``CrossEntropyLoss()(logits[:, -1], targets)``: it also pushes probability
  mass away from every other token, unlike a two-way softmax over {+, -}.
- L+ = -mean log sigma(M+(S, z_pos) - M+(S, z_neg))
- L- = -mean log sigma(M-(S, z_neg) - M-(S, z_pos))
- L_CP = L+ + L-
- L_all = L_base + L_CP, each term switchable (the ablation rows are configs).

Only target positions are supervised: history labels are inputs, never
targets (supervising them teaches "the second item of a pair is the opposite
of the first").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossTerms:
    total: torch.Tensor
    base: torch.Tensor | None = None
    plus: torch.Tensor | None = None
    minus: torch.Tensor | None = None

    @property
    def cp(self) -> torch.Tensor | None:
        if self.plus is None or self.minus is None:
            return None
        return self.plus + self.minus

    def as_floats(self) -> dict[str, float]:
        out = {"loss": float(self.total.detach())}
        for k in ("base", "plus", "minus", "cp"):
            v = getattr(self, k)
            if v is not None:
                out[f"loss_{k}"] = float(v.detach())
        return out


def base_loss(logits_pos: torch.Tensor, logits_neg: torch.Tensor, plus_id: int, minus_id: int) -> torch.Tensor:
    """1/2 [CE(full-vocabulary logits at z_pos, "+") + CE(... at z_neg, "-")], batch means."""
    b = logits_pos.shape[0]
    t_plus = torch.full((b,), int(plus_id), dtype=torch.long, device=logits_pos.device)
    t_minus = torch.full((logits_neg.shape[0],), int(minus_id), dtype=torch.long, device=logits_neg.device)
    return 0.5 * (F.cross_entropy(logits_pos.float(), t_plus) + F.cross_entropy(logits_neg.float(), t_minus))


def plus_contrast(m_plus_pos: torch.Tensor, m_plus_neg: torch.Tensor) -> torch.Tensor:
    """L+ = -mean log sigma(M+(S,z_pos) - M+(S,z_neg))."""
    return -F.logsigmoid(m_plus_pos.float() - m_plus_neg.float()).mean()


def minus_contrast(m_minus_neg: torch.Tensor, m_minus_pos: torch.Tensor) -> torch.Tensor:
    """L- = -mean log sigma(M-(S,z_neg) - M-(S,z_pos))."""
    return -F.logsigmoid(m_minus_neg.float() - m_minus_pos.float()).mean()


def preference_loss(
    logits_pos: torch.Tensor,
    logits_neg: torch.Tensor,
    plus_id: int,
    minus_id: int,
    *,
    use_base: bool = True,
    use_cp: bool = True,
) -> LossTerms:
    """L_all (or L_base alone, or L_CP alone) from full-vocabulary target logits of a pair batch."""
    if not (use_base or use_cp):
        raise ValueError("at least one of L_base and L_CP must be enabled")
    base = base_loss(logits_pos, logits_neg, plus_id, minus_id) if use_base else None
    lp = lm = None
    if use_cp:
        lp = plus_contrast(logits_pos[:, plus_id], logits_neg[:, plus_id])
        lm = minus_contrast(logits_neg[:, minus_id], logits_pos[:, minus_id])
    total = sum(t for t in (base, lp, lm) if t is not None)
    return LossTerms(total=total, base=base, plus=lp, minus=lm)


def q_score(m_plus: torch.Tensor, m_minus: torch.Tensor) -> torch.Tensor:
    """Q(S, z) = softmax(M+, M-)[+] = sigma(M+ - M-)."""
    return torch.sigmoid(m_plus.float() - m_minus.float())
