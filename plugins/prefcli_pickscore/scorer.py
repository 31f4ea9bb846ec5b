"""PickScore: logit_scale.exp() · cos(prompt embedding, image embedding).

PickScore (Kirstain et al., 2023) is OpenCLIP ViT-H/14 fine-tuned on the
Pick-a-Pic preference pairs, published as an HF `CLIPModel`
(`yuvalkirstain/PickScore_v1`) that is used with the processor of the model it
started from (`laion/CLIP-ViT-H-14-laion2B-s32B-b79K`). The score follows the
authors' README: normalize both embeddings, take the dot product and multiply
by the learned temperature `logit_scale.exp()` (≈100); a softmax over one
prompt's candidates turns the scores into preference probabilities.

Weights: the default hub model (with the processor of `processor=`, by
default the LAION one), any local folder holding an HF CLIP model (its own
tokenizer and preprocessor config are used when present, otherwise those of
`processor=`), or "tiny"/"tiny:SEED" (a seeded random tiny CLIP from
`prefcli.clip_common`, offline).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefcli import clip_common, devices
from prefcli.errors import WeightsError
from prefcli_pickscore import DEFAULT_PROCESSOR

TINY_SEED_OFFSET = 7919
MAX_LENGTH = 77  # the README tokenizes with truncation at CLIP's context length

# Only what CLIPModel and CLIPProcessor read; never optimizer states or .bin twins.
_MODEL_FILES = ["*.json", "*.txt", "*.safetensors"]
_MODEL_FILES_BIN = ["*.json", "*.txt", "pytorch_model*.bin"]
_PROCESSOR_FILES = ["*.json", "*.txt"]


# transformers 4 saves the image preprocessing as preprocessor_config.json;
# transformers 5's CLIPProcessor.save_pretrained nests it in processor_config.json.
_PREPROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


def _has_processor(directory: Path) -> bool:
    has_tok = any((directory / f).is_file() for f in ("tokenizer.json", "vocab.json"))
    return has_tok and any((directory / f).is_file() for f in _PREPROCESSOR_FILES)


def _load_image_processor(directory: Path) -> Any:
    """The preprocessing saved with the processor, PIL-backed as under transformers 4; its absence is an error."""
    CLIPImageProcessor = clip_common.pil_image_processor_class()

    if not any((directory / f).is_file() for f in _PREPROCESSOR_FILES):
        raise WeightsError(f"{directory}: no preprocessor_config.json, so PickScore's image preprocessing is unknown")
    try:
        return CLIPImageProcessor.from_pretrained(str(directory))
    except (OSError, ValueError) as e:
        raise WeightsError(f"{directory}: unreadable image preprocessing config ({e})") from e


def _has_weights(directory: Path) -> bool:
    return any(directory.glob("*.safetensors")) or any(directory.glob("pytorch_model*.bin"))


def load_pickscore(
    weights: str, processor: str = DEFAULT_PROCESSOR, device: Any = "cpu", dtype: Any = None
) -> clip_common.ClipBundle:
    """The PickScore model with the tokenizer and image preprocessing it expects."""
    from prefcli import weights as W

    if W.is_tiny(weights):
        seed = W.tiny_seed(weights)
        # Offset the seed so tiny pickscore is not the very same network as tiny clip.
        model = clip_common.tiny_clip_model(seed + TINY_SEED_OFFSET)
        model = model.to(device=device, dtype=dtype) if dtype is not None else model.to(device)
        size = int(model.config.vision_config.image_size)
        return clip_common.ClipBundle(
            model,
            clip_common.offline_clip_tokenizer(),
            clip_common.tiny_image_processor(size, pil=True),
            f"tiny:{seed}",
            pipeline="hf-pil",
        )
    model_dir = Path(W.resolve_dir(weights, allow_patterns=_MODEL_FILES))
    if not _has_weights(model_dir) and W.parse(weights).kind == "hub":
        # Older hub repos ship only pytorch_model.bin (read with weights_only=True by transformers).
        model_dir = Path(W.resolve_dir(weights, allow_patterns=_MODEL_FILES_BIN))
    if not _has_weights(model_dir):
        raise WeightsError(f"{model_dir}: no model weights (*.safetensors or pytorch_model.bin) for PickScore")
    # PickScore is published as a model used with the processor of the model it was
    # tuned from: hub weights take `processor`; a local folder may carry its own.
    own = W.parse(weights).kind == "local" and _has_processor(model_dir)
    proc_dir = (
        model_dir if own else Path(W.resolve_dir(processor, allow_patterns=_PROCESSOR_FILES, flag="-o processor"))
    )
    image_processor = _load_image_processor(proc_dir)
    tokenizer = clip_common.load_tokenizer(str(proc_dir))
    model = clip_common.load_hf_clip(str(model_dir), device=device, dtype=dtype)
    # The README's processor under transformers 4 (PickScore pins 4.27.3): convert("RGB"), then PIL.
    return clip_common.ClipBundle(model, tokenizer, image_processor, str(model_dir), pipeline="hf-pil")


class PickScoreScorer(clip_common.ClipBundleScorer):
    """Options: `processor` (weights spec of the tokenizer/image processor, used
    when the model folder has none), `batch_size` (default 16), `device`, `dtype`."""

    name = "pickscore"
    text_max_length = MAX_LENGTH

    def __init__(
        self,
        weights: str | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        *,
        spec: Any = None,
        options: Any = None,
    ):
        super().__init__(weights, device, dtype, spec=spec, options=options)
        dev = devices.torch_device(device)
        self.bundle = load_pickscore(
            self.weights,
            self.processor,
            device=dev,
            dtype=devices.torch_dtype(dtype, dev, getattr(self.spec, "cuda_dtype", None)),
        )

    @property
    def processor(self) -> str:
        """Where the tokenizer and image processor come from when the model folder has none (`-o processor`)."""
        return self.options.processor

    @property
    def logit_scale(self) -> float:
        return float(self.bundle.model.logit_scale.detach().exp())

    def scale(self, model: Any) -> Any:
        return model.logit_scale.exp().float()
