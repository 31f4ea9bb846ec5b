"""Max relative difference of each general scorer against its upstream code, per image kind.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python bench/parity_table.py [--json]

The same tiny weights in the official formats and the same oracles as the
parity tests (tests/reference/): the `hpsv2` package, OpenAI's `clip`
package, transformers 4.27.3 (PickScore's README), the `image-reward`
package, and hpsv3 1.0.0's `HPSv3RewardInferencer` under transformers 4.45.2
(μ; one child process for all of its cells). Each cell is `rel_err` (max |ours − upstream| / max |upstream|)
over the three files of that kind; the long-prompt column scores the
non-square files with a prompt longer than the context. An oracle that is
not installed gives "n/a" (the tests skip for the same reason).
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

import torch  # noqa: E402

from prefcli import clip_common  # noqa: E402
from prefcli.plugins import load_scorer  # noqa: E402
from reference import hpsv2_official, hpsv3_inferencer, imagereward_package, openai_clip, rel_err, transformers427  # noqa: E402
from reference.parity_images import KINDS, LONG_PROMPT, SHORT_PROMPT, parity_files, prefcli_candidates, upstream_open  # noqa: E402
from reference.pickscore_readme import scores_from_inputs  # noqa: E402

COLUMNS = (*KINDS, "long prompt")


def _cases():
    """(kind label, files, prompt) for every column."""
    for kind in KINDS:
        yield kind, parity_files(kind), SHORT_PROMPT
    yield "long prompt", parity_files("non-square"), LONG_PROMPT


def clip_rows(tmp: Path) -> dict:
    if not openai_clip.available():
        return {"clip": None, "aesthetic": None}
    clip = load_scorer("clip", weights="tiny")
    row = {}
    for label, files, prompt in _cases():
        ref = openai_clip.clip_scores(clip.bundle.model, [upstream_open(d) for d in files], prompt, 32)
        row[label] = rel_err(clip.score(prefcli_candidates(files, prompt)), ref)
    sys.path.insert(0, str(ROOT / "tests"))
    from test_scorer_clip_aesthetic_parity import LaionMLP, aesthetic_reference

    with torch.random.fork_rng():
        torch.manual_seed(1234)
        head = LaionMLP(768).eval()
        with torch.no_grad():
            for i, layer in enumerate(m for m in head.layers if isinstance(m, torch.nn.Linear)):
                layer.weight.normal_(0.0, 1.0 if i == 0 else layer.in_features**-0.5)
    torch.save(head.state_dict(), tmp / "sac+logos+ava1-l14-linearMSE.pth")
    aes = load_scorer("aesthetic", weights=str(tmp / "sac+logos+ava1-l14-linearMSE.pth"), clip_weights="tiny")
    arow = {}
    for label, files, _ in _cases():
        if label == "long prompt":
            arow[label] = None  # the aesthetic predictor reads no text
            continue
        arow[label] = rel_err(aes.score(prefcli_candidates(files, None)), aesthetic_reference(aes, head, files))
    return {"clip": row, "aesthetic": arow}


def pickscore_row(tmp: Path):
    if not transformers427.available():
        return None
    from transformers import CLIPModel, CLIPProcessor

    d = tmp / "pickscore"
    model = clip_common.tiny_clip_model(seed=21)
    with torch.no_grad():
        model.logit_scale.fill_(4.6052)
    model.save_pretrained(d)
    CLIPProcessor(
        image_processor=clip_common.tiny_image_processor(32), tokenizer=clip_common.offline_clip_tokenizer()
    ).save_pretrained(d)
    clip_common.tiny_image_processor(32).save_pretrained(d)
    ref_model = CLIPModel.from_pretrained(str(d)).eval()
    scorer = load_scorer("pickscore", weights=str(d))
    row = {}
    for label, files, prompt in _cases():
        out = transformers427.readme_inputs(d, files, [prompt])
        import numpy as np

        _, ref = scores_from_inputs(
            ref_model, torch.tensor(np.stack(out["pixels"])), torch.tensor([out["input_ids"][0]])
        )
        row[label] = rel_err(scorer.score(prefcli_candidates(files, prompt)), ref)
    return row


def hpsv2_rows(tmp: Path) -> dict:
    from prefcli_hpsv2 import scorer as hps

    names = [f"hpsv2 v{v} antialias={a}" for v in ("2.0", "2.1") for a in (False, True)]
    if not hpsv2_official.available():
        return dict.fromkeys(names)
    d = tmp / "hpsv2"
    d.mkdir()
    for seed, version in ((1, "2.0"), (2, "2.1")):
        torch.save(
            {"state_dict": hps.create_model(hps.TINY_ARCH, seed=seed).state_dict()}, d / hps.VERSION_FILES[version]
        )
    hpsv2_official.register_config(hps._TINY_CONFIG)
    rows = {}
    for version in ("2.0", "2.1"):
        oracle = hpsv2_official.load_model(hps.TINY_ARCH, d / hps.VERSION_FILES[version])
        for antialias in (False, True):
            s = load_scorer("hpsv2", weights=str(d), arch="tiny", version=version, antialias=antialias)
            row = {}
            for label, files, prompt in _cases():
                ref = hpsv2_official.score(
                    oracle, hps.TINY_ARCH, [upstream_open(f) for f in files], prompt, antialias=antialias
                )
                row[label] = rel_err(s.score(prefcli_candidates(files, prompt)), ref)
            rows[f"hpsv2 v{version} antialias={antialias}"] = row
    return rows


def imagereward_row(tmp: Path):
    if not imagereward_package.available():
        return None
    from prefcli_imagereward import tiny

    d = tiny.save_tiny_checkpoint(tmp / "imagereward", seed=3)
    ref_model = imagereward_package.load_reference(
        d / "med_config.json",
        d / "ImageReward.pt",
        d,
        vit=dict(img_size=224, patch_size=16, embed_dim=32, depth=2, num_heads=2),
        text_width=32,
    )
    scorer = load_scorer("imagereward", weights=str(d))
    row = {}
    for label, files, prompt in _cases():
        with torch.no_grad():
            ref = [ref_model.score(prompt, upstream_open(f)) for f in files]
        row[label] = rel_err(scorer.score(prefcli_candidates(files, prompt)), ref)
    return row


def hpsv3_row(tmp: Path):
    if not hpsv3_inferencer.available():
        return None
    from prefcli_hpsv3 import tiny

    d = tiny.save_tiny(tmp / "hpsv3", seed=3)
    base = hpsv3_inferencer.base_with_weights(d, d / "HPSv3.safetensors", tmp / "hpsv3-base")
    cases = list(_cases())
    out = hpsv3_inferencer.rewards(
        base, d / "HPSv3.safetensors", [(files, [prompt] * len(files)) for _, files, prompt in cases]
    )
    scorer = load_scorer("hpsv3", weights=str(d), dtype="float32")
    return {
        label: rel_err(scorer.score(prefcli_candidates(files, prompt)), b["rewards"][:, 0])
        for (label, files, prompt), b in zip(cases, out["batches"])
    }


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="prefcli-parity-") as t:
        tmp = Path(t)
        rows = {}
        rows.update(clip_rows(tmp))
        rows["pickscore"] = pickscore_row(tmp)
        rows.update(hpsv2_rows(tmp))
        rows["imagereward"] = imagereward_row(tmp)
        rows["hpsv3"] = hpsv3_row(tmp)
    if "--json" in argv:
        print(json.dumps(rows, indent=2))
        return 0
    out = io.StringIO()
    width = max(len(k) for k in rows)
    out.write(f"{'scorer':<{width}}  " + "  ".join(f"{c:>11}" for c in COLUMNS) + "\n")
    for name, row in rows.items():
        cells = []
        for c in COLUMNS:
            v = None if row is None else row.get(c)
            cells.append(f"{'n/a':>11}" if v is None else f"{v:>11.1e}")
        out.write(f"{name:<{width}}  " + "  ".join(cells) + "\n")
    print(out.getvalue(), end="")
    worst = max((v for r in rows.values() if r for v in r.values() if v is not None), default=0.0)
    print(f"worst: {worst:.1e} (tolerance 1e-4)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
