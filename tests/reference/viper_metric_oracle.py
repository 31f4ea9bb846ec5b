"""ViPer's own calculate_score run on the tiny fixture of tests/scorers/test_scorer_viper.py: prints the reference numbers.

    git clone https://github.com/EPFL-VILAB/ViPer /tmp/ViPer   # commit 099a539 recorded
    HF_HUB_OFFLINE=1 .venv/bin/python tests/reference/viper_metric_oracle.py /tmp/ViPer

Nothing of ViPer is copied: its metric.py is imported as it is, with two
stubs around it (torch.cuda.set_device, called at import, line 20; and
transformers 5's name for AutoModelForVision2Seq, used only to load the 8B
model) and DEVICE set to "cpu". ``calculate_score(processor, model,
context_images, query_image)`` (lines 44-68) then runs on the tiny model and
the processor at its scale; the printed list is VIPER_CALCULATE_SCORE there.
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
from pathlib import Path

import torch


def main(viper_dir: str) -> None:
    import transformers

    torch.set_num_threads(1)
    torch.cuda.set_device = lambda device: None  # metric.py line 20 selects cuda:0 at import
    # Before any other transformers import: its lazy module forgets the alias on the next one.
    transformers.AutoModelForVision2Seq = transformers.AutoModelForImageTextToText
    sys.path.insert(0, viper_dir)
    import metric  # ViPer's metric.py

    metric.DEVICE = "cpu"
    from transformers import Idefics2ImageProcessor, Idefics2Processor

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_scorer_viper import HISTORY_SIZES, NONSQUARE, _blocks, _image_sensitive, _sharpen

    from prefcli.plugins import load_scorer

    s = load_scorer("viper", weights="tiny:2", tokenizer="idefics2", batch_size=2)
    _sharpen(s.vlm)
    _image_sensitive(s.vlm)
    ip = Idefics2ImageProcessor(do_image_splitting=False, size=dict(s.vlm.preprocess.size))
    proc = Idefics2Processor(image_processor=ip, tokenizer=copy.deepcopy(s.vlm.tokenizer), image_seq_len=s.vlm.image_seq_len)
    d = tempfile.mkdtemp(prefix="viper-oracle-")
    neg, pos = [], []
    for i, (w, h) in enumerate(HISTORY_SIZES):
        p = os.path.join(d, f"h{i}.png")
        _blocks(100 + i, w, h).save(p)
        (neg if i % 2 == 0 else pos).append(p)
    scores = []
    for j, (w, h) in enumerate(NONSQUARE):
        q = os.path.join(d, f"q{j}.png")
        _blocks(200 + j, w, h).save(q)
        scores.append(metric.calculate_score(proc, s.vlm.core, metric.load_context_images(neg, pos), q))
    print("VIPER_CALCULATE_SCORE =", [round(x, 7) for x in scores])


if __name__ == "__main__":
    main(sys.argv[1])
