"""ImageReward: a BLIP reward model trained on expert rankings of text-to-image outputs.

Scoring follows the `image-reward` package (v1.5, `ImageReward.score` /
`inference_rank`) without installing it (it pins timm 0.6.13 and breaks on
transformers 5):

- image: Resize(224, bicubic) of the shortest side, CenterCrop(224), RGB,
  ToTensor, OpenAI CLIP mean/std → ViT patch tokens (ImageReward.py lines
  26-37), on the image as opened: a palette image is resized in its own mode
  and an RGBA one loses its alpha after the resize, as in the package;
- prompt: BERT `bert-base-uncased` tokenizer plus `[DEC]` (bos) and `[ENC]`
  (extra special token), padded to max_length 35 with truncation; the
  package's scoring path keeps `[CLS]` at position 0 (it does not swap in
  `[ENC]`), and so does this scorer;
- the text encoder cross-attends to all image tokens; reward = MLP([CLS]);
  score = (reward − 0.16717362830052426) / 1.0333394966054072.

Weights: the hub repo `THUDM/ImageReward` (default: `ImageReward.pt` +
`med_config.json`), a local folder holding those two files (and optionally a
`vocab.txt`, else the `tokenizer` option's BERT vocabulary is used), the
checkpoint file itself with `med_config.json` beside it, or "tiny"/"tiny:SEED"
(see `prefcli_imagereward.tiny`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefcli.errors import WeightsError
from prefcli.scorer import Scorer, broadcast_prompts, require_prompt
from prefcli.types import Candidate
from prefcli_imagereward import DEFAULT_TOKENIZER

CHECKPOINT_FILE = "ImageReward.pt"
MED_CONFIG_FILE = "med_config.json"
_TOKENIZER_FILES = ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def image_transform(size: int = 224) -> Any:
    """The package's `_transform(224)`: bicubic resize of the shortest side, center crop, RGB, tensor, normalize."""
    from torchvision import transforms as T

    return T.Compose(
        [
            T.Resize(size, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(size),
            lambda im: im.convert("RGB"),
            T.ToTensor(),
            T.Normalize(OPENAI_CLIP_MEAN, OPENAI_CLIP_STD),
        ]
    )


def load_tokenizer(directory: str | Path) -> Any:
    """BERT uncased WordPiece plus ImageReward's `[DEC]` and `[ENC]`, added exactly as BLIP adds them."""
    from transformers import BertTokenizer

    try:
        tok = BertTokenizer.from_pretrained(str(directory))
    except (OSError, ValueError) as e:
        raise WeightsError(f"{directory}: no usable BERT tokenizer files ({e})") from e
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tok


def _read_med_config(path: Path) -> dict:
    from prefcli.jsonio import read_json

    cfg = read_json(path, error=WeightsError, expect=dict, what="med_config.json")
    need = [
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
    ]
    missing = [k for k in need if k not in cfg]
    if missing:
        raise WeightsError(f"{path}: med_config.json lacks {', '.join(missing)}")
    return cfg


class ImageRewardScorer(Scorer):
    """Options: `tokenizer` (weights spec of the BERT vocabulary when the weights
    folder has no vocab.txt), `batch_size` (default 16), `device`, `dtype`."""

    def __init__(
        self,
        weights: str | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        *,
        spec: Any = None,
        options: Any = None,
    ):
        import tempfile

        from prefcli import devices
        from prefcli import weights as W
        from prefcli_imagereward import tiny
        from prefcli_imagereward.model import build_from_official

        super().__init__(weights, device, dtype, spec=spec, options=options)
        dev = devices.torch_device(device)
        tdtype = devices.torch_dtype(dtype, dev, getattr(self.spec, "cuda_dtype", None))

        if W.is_tiny(self.weights):
            seed = W.tiny_seed(self.weights)
            self.source = f"imagereward-tiny:{seed}"
            state, med = tiny.tiny_state_dict(seed), tiny.tiny_med_config()
            with tempfile.TemporaryDirectory(prefix="prefcli-ir-tok-") as d:
                self.tokenizer = load_tokenizer(tiny.write_vocab(d))
        else:
            ckpt, med_path = self._files(self.weights)
            self._ckpt, self._med = ckpt, med_path
            self.source = str(W.parse(self.weights).describe())
            state, med = W.load_state_dict(ckpt), _read_med_config(med_path)
            tok_dir = (
                ckpt.parent
                if (ckpt.parent / "vocab.txt").is_file()
                else W.resolve_dir(self.options.tokenizer, allow_patterns=_TOKENIZER_FILES, flag="-o tokenizer")
            )
            self.tokenizer = load_tokenizer(tok_dir)
        if len(self.tokenizer) != int(med["vocab_size"]):
            raise WeightsError(
                f"{self.source}: the tokenizer has {len(self.tokenizer)} tokens with [DEC] and [ENC] but med_config.json "
                f"says vocab_size {med['vocab_size']}; tokenizer and weights do not belong together"
            )
        self.net = build_from_official(state, med, self.source).to(device=dev, dtype=tdtype)
        self.transform = image_transform(224)

    @staticmethod
    def _files(weights: str) -> tuple[Path, Path]:
        from prefcli import weights as W

        src = W.parse(weights)
        if src.kind == "url":
            raise WeightsError(
                f"{weights}: ImageReward needs two files ({CHECKPOINT_FILE} and {MED_CONFIG_FILE}); "
                f"download both into one folder and pass --weights FOLDER"
            )
        if src.kind == "local" and src.path is not None and src.path.is_file():
            med = src.path.parent / MED_CONFIG_FILE
            if not med.is_file():
                raise WeightsError(
                    f"{src.path}: no {MED_CONFIG_FILE} beside the checkpoint (it defines the text encoder)"
                )
            return src.path, med
        # The download advice names every file a folder needs: both of ImageReward's and the BERT vocabulary.
        need = {
            "also": [CHECKPOINT_FILE, MED_CONFIG_FILE],
            "then": f"hf download {DEFAULT_TOKENIZER} vocab.txt --local-dir DIR",
        }
        return Path(W.resolve_file(weights, CHECKPOINT_FILE, **need)), Path(
            W.resolve_file(weights, MED_CONFIG_FILE, **need)
        )

    @property
    def weights_id(self) -> str:
        """The checkpoint and med_config by content (hub commit included); the tokenizer is an option of the identity."""
        from prefcli.weights import identity

        if self.source.startswith("imagereward-tiny"):
            return self.source
        return f"{identity(str(self._ckpt))}+{identity(str(self._med))}"

    def modules(self) -> Any:
        return (self.net,)

    @property
    def _device(self) -> Any:
        return next(self.net.parameters()).device

    @property
    def _dtype(self) -> Any:
        return next(self.net.parameters()).dtype

    def _tokens(self, prompts: Sequence[str]) -> tuple[Any, Any]:
        from prefcli_imagereward.model import MAX_TEXT_LENGTH

        enc = self.tokenizer(
            list(prompts), padding="max_length", truncation=True, max_length=MAX_TEXT_LENGTH, return_tensors="pt"
        )
        return enc["input_ids"].to(self._device), enc["attention_mask"].to(self._device)

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        import torch

        candidates = list(candidates)
        prompts = [require_prompt(c, "imagereward") for c in candidates]
        out: list[float] = []
        with torch.no_grad():
            for start in range(0, len(candidates), self.batch_size):
                batch = candidates[start : start + self.batch_size]
                # The image as opened: the package resizes and crops it in its own mode, then converts to RGB.
                px = torch.stack([self.transform(c.original) for c in batch]).to(self._device, self._dtype)
                ids, mask = self._tokens(prompts[start : start + self.batch_size])
                out.extend(float(r) for r in self.net(px, ids, mask).float().cpu())
        return out

    def reward(self, pixels: Any, prompts: Sequence[str] | str | None = None, state: Any = None) -> Any:
        """Differentiable ImageReward for B×3×H×W pixels in [0, 1]; one prompt per image, or one for all."""
        from prefcli import clip_common

        prompts = broadcast_prompts(prompts, pixels.shape[0])
        # torchvision's CenterCrop rounds the offset, as the package's transform does.
        px = clip_common.preprocess_pixels(
            pixels.to(self._device), size=224, mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD, offset="round"
        )
        ids, mask = self._tokens(prompts)
        return self.net(px.to(self._dtype), ids, mask)
