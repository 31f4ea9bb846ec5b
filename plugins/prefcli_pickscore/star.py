"""`pickscore-star`: a PickScore* run's model, under its own name so tables show it beside PickScore.

PickScore* (`prefcli train --config pickscore-star`) writes an HF CLIP folder
that `pickscore` loads as weights; `pickscore-star` is the same scorer with
two differences: it has no default weights (it needs the trained folder, or
"tiny" for tests, and says so), and its weights id names the folder's content (the sha256 of its
model.safetensors), so a retrained folder never reuses cached scores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefcli.errors import WeightsError
from prefcli_pickscore import DEFAULT_PROCESSOR
from prefcli_pickscore.scorer import PickScoreScorer

TRAINED_INFO = "prefcli_model.json"  # written by prefcli.train.pickscore_star


class PickScoreStarScorer(PickScoreScorer):
    name = "pickscore-star"

    def __init__(self, weights: str | None = None, *args: Any, **kwargs: Any):
        if not weights:
            raise WeightsError(
                "pickscore-star needs --weights RUN/model: a folder written by `prefcli train --config pickscore-star`"
            )
        from prefcli import weights as W

        if W.is_tiny(weights):  # the tiny random PickScore a toy PickScore* starts from (tests, offline)
            super().__init__(weights, *args, **kwargs)
            self._fingerprint = "tiny"
            return
        folder = Path(weights).expanduser()
        if not (folder / TRAINED_INFO).is_file():
            raise WeightsError(
                f"{weights}: not a PickScore* model folder (no {TRAINED_INFO}); train one with `prefcli train --config pickscore-star`"
            )
        super().__init__(str(folder), *args, **kwargs)
        from prefcli.weights import sha256_file

        self._fingerprint = sha256_file(folder / "model.safetensors")[:16]

    @property
    def processor(self) -> str:
        # A trained folder carries its own; pickscore-star declares no `processor` option (the base model's is used).
        return DEFAULT_PROCESSOR

    @property
    def weights_id(self) -> str:
        if self._fingerprint == "tiny":
            return f"pickscore-star-{self.bundle.source}"
        return f"pickscore-star:{self.weights}#sha256={self._fingerprint}"
