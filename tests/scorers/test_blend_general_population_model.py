"""`blend`'s general part may be a trained population model: preftoken with weights trained without histories
(bench/bench_blend.py --trained uses the shipped tiny-cpu-population recipe's models so)."""

from __future__ import annotations

import numpy as np
import pytest

from prefcli import plugins
from prefcli.errors import OptionError
from prefcli.harness.runner import run_scorer
from prefcli.train import pretrained
from prefcli.types import Candidate, HistoryPair, RankTask, UserHistory


def _shipped(*names):
    missing = [n for n in names if n not in pretrained.names()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not shipped")


def test_a_population_checkpoint_is_a_general_part_and_a_history_model_is_not():
    _shipped("tiny-opposed-population", "tiny-opposed-cp")
    from picture_factory import structured_images

    imgs = structured_images([(32, 32)] * 10, seed=3)
    cands = [Candidate.from_image(im, prompt="a cat", image_id=f"i{k}") for k, im in enumerate(imgs)]
    hist = UserHistory(
        pairs=tuple(HistoryPair(cands[2 * i], cands[2 * i + 1], prompt="a cat", pair_id=f"p{i}") for i in range(3)),
        user_id="u",
    )
    task = RankTask(task_id="t", candidates=cands[6:], liked_index=0, history=hist, user_id="u", n_ref=3)
    blend = plugins.load_scorer(
        "blend",
        device="cpu",
        general="preftoken",
        general_weights="tiny-opposed-population",
        personal="preftoken",
        personal_weights="tiny-opposed-cp",
    )
    rec = run_scorer(blend, [task])[0][0]
    assert len(rec["scores"]) == 4 and np.isfinite(rec["scores"]).all() and rec["blend"]["loo_pairs"] == 3
    # The general part read no history: its scores of the candidates are the population model's alone.
    alone = plugins.load_scorer("preftoken", "tiny-opposed-population", device="cpu")
    np.testing.assert_allclose(
        [e["general"] for e in rec["extras"]], alone.score(cands[6:], alone.condition(None)), rtol=1e-5
    )

    with pytest.raises(OptionError, match="history-free"):
        plugins.load_scorer(
            "blend",
            device="cpu",
            general="preftoken",
            general_weights="tiny-opposed-cp",
            personal="clip-probe",
            personal_weights="tiny",
        )
