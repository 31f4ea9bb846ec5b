"""Toy-scale training terms that are not in the paper (config switches of the tiny-cpu configs only).

History-sensitivity (``loss_swap``): the same target pair is scored twice,
under the user's own history S_u and under another training user's history
S_v. With the pair margin d(S) = [M+ - M-](S, z_pos) - [M+ - M-](S, z_neg),

    L_swap = -mean log sigma(d(S_u) - d(S_v)).

Whatever the model learned about the *average* taste moves d(S_u) and d(S_v)
alike and cancels in the difference, so this term's gradient is exactly the
part of the preference that only the history can explain. On worlds where
most of the taste is shared, that part is small against the population's
shortcut, and without the term the tiny models never start reading the
history (docs/toy-results.md). The other user is drawn at random from the
training users (no group labels are used); a same-taste donor only weakens
the signal, it never points it the wrong way on average.

The paper's 8B configs never enable it: their stages leave ``loss_swap`` at 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pair_margin(logits_pos: torch.Tensor, logits_neg: torch.Tensor, plus_id: int, minus_id: int) -> torch.Tensor:
    """d(S) per pair: the Q-logit (M+ - M-) of the liked target minus that of the disliked one."""
    q_pos = logits_pos[:, plus_id].float() - logits_pos[:, minus_id].float()
    q_neg = logits_neg[:, plus_id].float() - logits_neg[:, minus_id].float()
    return q_pos - q_neg


def history_contrast(
    own_pos: torch.Tensor,
    own_neg: torch.Tensor,
    swap_pos: torch.Tensor,
    swap_neg: torch.Tensor,
    plus_id: int,
    minus_id: int,
) -> torch.Tensor:
    """L_swap = -mean log sigma(d(S_own) - d(S_swap)) over a batch of pairs."""
    d_own = pair_margin(own_pos, own_neg, plus_id, minus_id)
    d_swap = pair_margin(swap_pos, swap_neg, plus_id, minus_id)
    return -F.logsigmoid(d_own - d_swap).mean()
