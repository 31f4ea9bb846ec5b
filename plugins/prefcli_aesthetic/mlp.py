"""The LAION improved-aesthetic-predictor head, layer for layer.

The upstream class is a LightningModule whose `layers` is this Sequential;
keeping the name and the Dropout positions keeps the state-dict keys
`layers.{0,2,4,6,7}.{weight,bias}`, so the released file loads as it is.
"""

from __future__ import annotations

import torch
from torch import nn

from prefcli.heads import reward_mlp

EMBED_DIM = 768
EXPECTED_KEYS = frozenset(f"layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias"))


class AestheticMLP(nn.Module):
    def __init__(self, input_size: int = EMBED_DIM):
        super().__init__()
        self.input_size = input_size
        # No activations between the linears: upstream trained it this way.
        self.layers = reward_mlp(input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def tiny_mlp(seed: int = 0) -> AestheticMLP:
    """Seeded random head for tests; the global RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) + 1)  # not the backbone's stream
        return AestheticMLP().eval()
