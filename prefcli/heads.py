"""The reward head shared by the LAION aesthetic predictor and ImageReward.

Both publish the same MLP: 768→1024→128→64→16→1 with dropouts 0.2/0.2/0.1
and no activations between the linears (docs/scorers/aesthetic.md). The layer
order fixes the state-dict indices {0, 2, 4, 6, 7} their checkpoints use.
"""

from __future__ import annotations

from typing import Any


def reward_mlp(width: int = 768) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Linear(width, 1024),
        nn.Dropout(0.2),
        nn.Linear(1024, 128),
        nn.Dropout(0.2),
        nn.Linear(128, 64),
        nn.Dropout(0.1),
        nn.Linear(64, 16),
        nn.Linear(16, 1),
    )
