"""CLIP pieces shared by every scorer built on a CLIP model.

clip, aesthetic, pickscore and hpsv2 all embed images (and most embed text)
with a CLIP model. What they share lives here, so each plugin keeps only what
makes it different:

- `tiny_clip_model(seed, ...)`: a seeded, randomly initialized HF `CLIPModel`
  from a tiny `CLIPConfig` (hidden 32, 2 layers, 4 heads, 32 px images) whose
  text tower keeps the full 49,408-token OpenAI vocabulary, so the real
  tokenizer works with it.
- `offline_clip_tokenizer()`: the OpenAI CLIP BPE tokenizer as an HF
  `CLIPTokenizer`, built from the vocabulary open_clip ships (no network).
- `tiny_image_processor(size)`: an HF `CLIPImageProcessor` for tiny models.
- `load_hf_clip(directory)`: `CLIPModel.from_pretrained` that refuses missing
  or mis-shaped weights instead of warning about them.
- `openai_image_transform(...)` / `PIPELINES`: the image preprocessing the
  upstream code of each scorer used, on the image as opened (see
  `ClipBundle.pipeline`); `openai_clean_text`: OpenAI's prompt cleaning.
- `preprocess_pixels(pixels, size)`: CLIP preprocessing in torch ops only
  (shortest side bicubic resize, center crop, mean/std normalization) for
  differentiable scoring of B×3×H×W tensors in [0, 1].
- `image_features` / `text_features`: projected embeddings, the same on
  transformers 4 (tensors) and 5 (output objects).
- `batched`: batching (devices and dtypes: `prefcli.devices`).

Nothing here is imported by `prefcli --help`; torch is imported inside
functions all the same, so importing this module stays cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from prefcli.errors import WeightsError, one_line
from prefcli.scorer import EmbeddingScorer, broadcast_prompts

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

# OpenAI CLIP's normalization, also used by LAION/open_clip ViT-H-14 models.
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

CLIP_VOCAB_SIZE = 49408
CLIP_CONTEXT_LENGTH = 77
BOS_TOKEN_ID = 49406  # <|startoftext|>
EOS_TOKEN_ID = 49407  # <|endoftext|>, also the padding token of OpenAI's HF tokenizer

# What a hub snapshot of a CLIP model needs: configs, tokenizer files and the
# safetensors weights (not the pickled, TF and Flax copies hub repos also hold).
HUB_PATTERNS = ["*.json", "*.txt", "*.safetensors"]

T = TypeVar("T")


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items, in order."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def tiny_clip_config(projection_dim: int = 16, image_size: int = 32, patch_size: int = 8, hidden_size: int = 32) -> Any:
    """A tiny CLIPConfig for tests and offline demos (transformers' test sizes)."""
    from transformers import CLIPConfig

    text = dict(
        vocab_size=CLIP_VOCAB_SIZE,  # the real vocabulary: 49,408 x 32 is only 1.6M floats
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=CLIP_CONTEXT_LENGTH,
        bos_token_id=BOS_TOKEN_ID,
        eos_token_id=EOS_TOKEN_ID,  # pool at the first <|endoftext|>, as OpenAI CLIP does
        pad_token_id=EOS_TOKEN_ID,
        projection_dim=projection_dim,
    )
    vision = dict(
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=projection_dim,
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)


def tiny_clip_model(seed: int = 0, projection_dim: int = 16, image_size: int = 32, patch_size: int = 8) -> CLIPModel:
    """A CLIPModel with seeded random weights, in eval mode; the global RNG is left untouched."""
    import torch
    from transformers import CLIPModel

    config = tiny_clip_config(projection_dim=projection_dim, image_size=image_size, patch_size=patch_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = CLIPModel(config)
    return model.eval()


def tiny_image_processor(size: int = 32, pil: bool = False) -> CLIPImageProcessor:
    """CLIP's own preprocessing (resize, crop, OpenAI mean/std) at a tiny size (`pil`: the PIL-backed class)."""
    from transformers import CLIPImageProcessor

    cls = pil_image_processor_class() if pil else CLIPImageProcessor
    return cls(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=list(OPENAI_CLIP_MEAN),
        image_std=list(OPENAI_CLIP_STD),
    )


@functools.lru_cache(maxsize=1)
def offline_clip_tokenizer() -> CLIPTokenizer:
    """The OpenAI CLIP tokenizer (49,408 tokens, context 77), built without network.

    open_clip ships the BPE merges that OpenAI's tokenizer is made of; written
    out as vocab.json + merges.txt they load as an HF `CLIPTokenizer` whose ids
    equal `open_clip.tokenize` (and the hub's openai/clip-vit-* tokenizers).
    In transformers 5, `CLIPTokenizer(vocab_file=...)` silently ignores the
    files, so the tokenizer is loaded with `from_pretrained` from a temporary
    directory instead.
    """
    import json
    import tempfile
    from pathlib import Path

    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    simple = SimpleTokenizer()
    vocab = dict(simple.encoder)
    # open_clip renamed the two special tokens; HF and OpenAI use these names.
    renames = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {renames.get(k, k): v for k, v in vocab.items()}
    if (
        vocab.get("<|startoftext|>") != BOS_TOKEN_ID
        or vocab.get("<|endoftext|>") != EOS_TOKEN_ID
        or len(vocab) != CLIP_VOCAB_SIZE
    ):
        raise WeightsError("open_clip's bundled CLIP vocabulary is not the expected 49,408-token OpenAI vocabulary")
    merges = sorted(simple.bpe_ranks.items(), key=lambda kv: kv[1])
    with tempfile.TemporaryDirectory(prefix="prefcli-clip-tok-") as d:
        (Path(d) / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (Path(d) / "merges.txt").write_text(
            "#version: 0.2\n" + "".join(f"{a} {b}\n" for (a, b), _ in merges), encoding="utf-8"
        )
        (Path(d) / "tokenizer_config.json").write_text(
            json.dumps(
                {
                    "model_max_length": CLIP_CONTEXT_LENGTH,
                    "bos_token": "<|startoftext|>",
                    "eos_token": "<|endoftext|>",
                    "unk_token": "<|endoftext|>",
                    "pad_token": "<|endoftext|>",
                    "do_lower_case": True,
                }
            ),
            encoding="utf-8",
        )
        return CLIPTokenizer.from_pretrained(d)


def tokenize(
    tokenizer: Any, prompts: Sequence[str], device: torch.device | str = "cpu", max_length: int = CLIP_CONTEXT_LENGTH
) -> dict:
    """input_ids and attention_mask, padded to `max_length`, truncated past it."""
    enc = tokenizer(list(prompts), padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device)}


def load_hf_clip(directory: str, device: torch.device | str = "cpu", dtype: torch.dtype | None = None) -> CLIPModel:
    """`CLIPModel.from_pretrained(directory)`; missing or mis-shaped weights are an error.

    from_pretrained only warns when a checkpoint does not fit the config and
    fills the gaps with random numbers, which gives plausible-looking, wrong
    scores. Extra `position_ids` buffers of older checkpoints are harmless.
    """
    from transformers import CLIPConfig, CLIPModel

    from prefcli import weights as W

    # Checked before transformers opens anything: a garbage model.safetensors is
    # one line naming it, and a pickled pytorch_model.bin is read by prefcli's
    # restricted loader (never by transformers' own torch.load).
    state = W.hf_folder_state(directory)
    try:
        if state is None:
            model, info = CLIPModel.from_pretrained(directory, output_loading_info=True, dtype=dtype)
        else:
            config = CLIPConfig.from_pretrained(directory)
            model, info = CLIPModel.from_pretrained(
                None, config=config, state_dict=state, output_loading_info=True, dtype=dtype
            )
    except RuntimeError as e:
        if "mismatch" not in str(e).lower():
            raise WeightsError(f"{directory}: not a loadable Hugging Face CLIP model ({one_line(e)})") from None
        # transformers 5 refuses mis-shaped tensors itself (4.x only warns).
        raise WeightsError(
            f"{directory}: checkpoint does not match its CLIP config: tensors of the wrong shape"
        ) from None
    except (OSError, ValueError) as e:
        raise WeightsError(f"{directory}: not a loadable Hugging Face CLIP model ({one_line(e)})") from None
    except Exception as e:  # noqa: BLE001 - transformers and safetensors raise their own types; never a traceback
        raise WeightsError(
            f"{directory}: not a loadable Hugging Face CLIP model ({type(e).__name__}: {one_line(e)})"
        ) from None
    missing = list(info.get("missing_keys") or [])
    mismatched = [k if isinstance(k, str) else k[0] for k in info.get("mismatched_keys") or []]
    unexpected = [k for k in info.get("unexpected_keys") or [] if not k.endswith("position_ids")]
    if missing or mismatched or unexpected:
        parts = []
        for label, keys in (("missing", missing), ("wrong shape", mismatched), ("unexpected", unexpected)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {sorted(keys)[0]})")
        raise WeightsError(f"{directory}: checkpoint does not match its CLIP config: {', '.join(parts)}")
    return model.to(device).eval()


def pil_image_processor_class() -> Any:
    """transformers' PIL-backed CLIP image processor: transformers 5's `CLIPImageProcessorPil`, 4's `CLIPImageProcessor`.

    transformers 5's default `CLIPImageProcessor` resizes with torchvision, a
    few 1/255 per pixel away from the PIL resize of transformers 4, whose
    processor made PickScore's published numbers (its requirements pin
    transformers 4.27.3). The PIL-backed class gives identical pixel values
    (0 difference, measured against 4.27.3 itself in tests/scorers/test_scorer_pickscore.py).
    """
    try:
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    except ImportError:  # transformers 4: the one CLIPImageProcessor is PIL-backed
        from transformers import CLIPImageProcessor as CLIPImageProcessorPil
    return CLIPImageProcessorPil


# Pipelines: how a scorer's upstream code turned the image it opened into pixels.
# "openai": OpenAI CLIP's `_transform` (github.com/openai/CLIP, clip/clip.py lines
#   75-86), which `clip.load` returns and the LAION aesthetic predictor uses
#   (improved-aesthetic-predictor, simple_inference.py lines 103-108): torchvision
#   Resize(shortest side, bicubic) on the PIL image *in its own mode*, CenterCrop
#   (torchvision's rounding of the offset), convert("RGB"), ToTensor, Normalize.
# "hf-pil": transformers 4's CLIPImageProcessor (PickScore's README): convert("RGB")
#   first (transformers 4.27.3 image_transforms.convert_to_rgb: a plain convert,
#   no compositing), then PIL resize, crop with a floored offset, rescale, normalize.
PIPELINES = ("openai", "hf-pil")


def openai_image_transform(
    size: int, crop: int | None = None, mean: Sequence[float] = OPENAI_CLIP_MEAN, std: Sequence[float] = OPENAI_CLIP_STD
) -> Any:
    """OpenAI CLIP's preprocessing of one PIL image (any mode) → 3×crop×crop tensor."""
    from torchvision import transforms as T

    return T.Compose(
        [
            # On a PIL image torchvision calls PIL's own resize: a palette image is
            # resized nearest-neighbour, RGBA premultiplied, as upstream's were.
            T.Resize(int(size), interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(int(crop or size)),
            lambda im: im if im.mode == "RGB" else im.convert("RGB"),  # alpha dropped, never composited
            T.ToTensor(),
            T.Normalize(tuple(mean), tuple(std)),
        ]
    )


def openai_clean_text(text: str) -> str:
    """OpenAI CLIP's prompt cleaning (clip/simple_tokenizer.py lines 50-59, 123):
    ftfy.fix_text, HTML entities unescaped twice, whitespace runs collapsed,
    stripped, lower-cased. HF's CLIP tokenizers do not unescape nor run ftfy."""
    import html
    import re

    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return re.sub(r"\s+", " ", text).strip().lower()


def load_image_processor(directory: str) -> CLIPImageProcessor:
    """The preprocessing saved with a model; its absence is an error, never a silent default."""
    from pathlib import Path

    from transformers import CLIPImageProcessor

    if not (Path(directory) / "preprocessor_config.json").is_file():
        raise WeightsError(f"{directory}: no preprocessor_config.json, so the model's image preprocessing is unknown")
    return CLIPImageProcessor.from_pretrained(directory)


def load_tokenizer(directory: str) -> Any:
    """The tokenizer saved with a model (its absence is an error)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(directory)
    except (OSError, ValueError) as e:
        raise WeightsError(f"{directory}: no usable tokenizer files ({e})") from e


def projected(out: Any) -> torch.Tensor:
    # transformers 4 returns the projected features; 5 returns an output object
    # whose pooler_output holds them.
    return out if hasattr(out, "dim") else out.pooler_output


def image_features(model: CLIPModel, pixel_values: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Projected image embeddings (N, D), L2-normalized unless asked otherwise."""
    feats = projected(model.get_image_features(pixel_values=pixel_values))
    return feats / feats.norm(dim=-1, keepdim=True) if normalize else feats


def text_features(
    model: CLIPModel, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, normalize: bool = True
) -> torch.Tensor:
    """Projected text embeddings (N, D), L2-normalized unless asked otherwise."""
    feats = projected(model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))
    return feats / feats.norm(dim=-1, keepdim=True) if normalize else feats


def processor_geometry(processor: Any) -> tuple[int, int, tuple[float, ...], tuple[float, ...]]:
    """(resize shortest side, crop size, mean, std) of an HF CLIP image processor."""

    def field(obj: Any, name: str) -> Any:
        # dict in transformers 4, SizeDict (attributes) in 5, or a bare int.
        if isinstance(obj, (int, float)) or obj is None:
            return obj
        if isinstance(obj, dict):
            return obj.get(name)
        return getattr(obj, name, None)

    short = field(processor.size, "shortest_edge")
    crop = field(processor.crop_size, "height")
    if short is None and crop is None:
        raise WeightsError("the image processor has neither a shortest_edge size nor a crop size")
    short = int(short or crop)
    return short, int(crop or short), tuple(processor.image_mean), tuple(processor.image_std)


def preprocess_pixels(
    pixels: torch.Tensor,
    size: int = 224,
    crop: int | None = None,
    mean: Sequence[float] = OPENAI_CLIP_MEAN,
    std: Sequence[float] = OPENAI_CLIP_STD,
    offset: str = "floor",
) -> torch.Tensor:
    """CLIP preprocessing in torch ops, so gradients flow back to `pixels`.

    `pixels` is B×3×H×W in [0, 1]. The shortest side is resized to `size`
    (bicubic, antialiased), the centre `crop`×`crop` (default `size`) is kept,
    then each channel is normalized. The crop offset is floored (HF's
    processors) or rounded (`offset="round"`: torchvision's CenterCrop, which
    OpenAI CLIP uses). The values differ from PIL's resize only by
    interpolation rounding.
    """
    import torch
    import torch.nn.functional as F

    if pixels.dim() != 4 or pixels.shape[1] != 3:
        raise ValueError(f"expected pixels of shape B×3×H×W, got {tuple(pixels.shape)}")
    crop = crop or size
    h, w = pixels.shape[-2:]
    short, long = (h, w) if h <= w else (w, h)
    new_long = int(size * long / short)
    new_h, new_w = (size, new_long) if h <= w else (new_long, size)
    x = pixels
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)
    if offset == "round":
        top, left = max(int(round((new_h - crop) / 2.0)), 0), max(int(round((new_w - crop) / 2.0)), 0)
    else:
        top, left = max((new_h - crop) // 2, 0), max((new_w - crop) // 2, 0)
    x = x[..., top : top + crop, left : left + crop]
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def _plain_rgb(im: Any) -> Any:
    """transformers 4's `convert_to_rgb`: `convert("RGB")`, nothing composited.

    Pillow keeps a palette's transparent entry as an RGB colour key
    (`info["transparency"]`), which transformers 5's processor would composite
    onto white; transformers 4 never looked at it, so the key is dropped.
    """
    if im.mode == "RGB" and "transparency" not in im.info:
        return im
    rgb = im.convert("RGB")
    rgb.info.pop("transparency", None)
    return rgb


class ClipBundle:
    """A CLIP model with the tokenizer and image preprocessing it was trained with."""

    def __init__(
        self, model: CLIPModel, tokenizer: Any, processor: CLIPImageProcessor, source: str, pipeline: str = "openai"
    ):
        if pipeline not in PIPELINES:
            raise ValueError(f"unknown preprocessing pipeline {pipeline!r}; use one of {PIPELINES}")
        self.model = model
        self.tokenizer = tokenizer
        self.processor = processor
        self.source = source  # what was loaded: "tiny:<seed>" or a directory
        self.pipeline = pipeline
        self._openai_transform = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def embed_dim(self) -> int:
        return int(self.model.config.projection_dim)

    def pixel_values(self, images: Sequence[Any]) -> torch.Tensor:
        """PIL images as opened (any mode) → the model's input tensor, as the scorer's upstream code made it.

        The sizes and mean/std are the model's processor config's; the order
        of the steps and the resize backend are the pipeline's (see PIPELINES).
        """
        from prefcli.stage_times import PREPROCESS, timed

        with timed(PREPROCESS):
            return self._pixel_values(images)

    def _pixel_values(self, images: Sequence[Any]) -> torch.Tensor:
        import torch

        if self.pipeline == "openai":
            if self._openai_transform is None:
                short, crop, mean, std = processor_geometry(self.processor)
                self._openai_transform = openai_image_transform(short, crop, mean, std)
            px = torch.stack([self._openai_transform(im) for im in images])
        else:
            px = self.processor(images=[_plain_rgb(im) for im in images], return_tensors="pt")["pixel_values"]
        return px.to(self.device, self.dtype)

    def preprocess_tensor(self, pixels: torch.Tensor) -> torch.Tensor:
        """B×3×H×W in [0, 1] → model input, differentiably, with the processor's geometry and the pipeline's crop offset."""
        short, crop, mean, std = processor_geometry(self.processor)
        rounding = "round" if self.pipeline == "openai" else "floor"
        return preprocess_pixels(pixels.to(self.device), size=short, crop=crop, mean=mean, std=std, offset=rounding).to(
            self.dtype
        )


def load_clip(
    weights: str,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    tiny_projection_dim: int = 16,
    flag: str = "--weights",
) -> ClipBundle:
    """A CLIP model from a weights spec (see `prefcli.weights`).

    "tiny" (or a seeded tiny spec) builds `tiny_clip_model` with the offline
    tokenizer and a 32 px processor; anything else is resolved to a directory
    holding an HF CLIP model, its tokenizer and its preprocessor config.
    """
    from prefcli import weights as W

    if W.is_tiny(weights):
        seed = W.tiny_seed(weights)
        model = tiny_clip_model(seed, projection_dim=tiny_projection_dim)
        if dtype is not None:
            model = model.to(dtype)
        size = int(model.config.vision_config.image_size)
        return ClipBundle(model.to(device), offline_clip_tokenizer(), tiny_image_processor(size), f"tiny:{seed}")
    directory = str(W.resolve_dir(weights, allow_patterns=HUB_PATTERNS, flag=flag))
    processor = load_image_processor(directory)
    tokenizer = load_tokenizer(directory)
    model = load_hf_clip(directory, device=device, dtype=dtype)
    return ClipBundle(model, tokenizer, processor, directory)


class ClipBundleScorer(EmbeddingScorer):
    """What the HF-CLIP scorers (clip, pickscore) share: a `ClipBundle` in
    `self.bundle`, batched unit-norm embeddings, and score = scale · cos(image,
    prompt) with each distinct prompt embedded once. Subclasses set `name` and
    implement `scale(model)` (a tensor, so `reward` keeps its gradient)."""

    name: str = "clip"
    text_max_length: int = CLIP_CONTEXT_LENGTH
    bundle: ClipBundle
    # OpenAI's prompt cleaning before the HF tokenizer (clip), or none (pickscore: its
    # upstream tokenizer was HF's, which neither unescapes HTML nor runs ftfy).
    clean_text: Any = None

    def _tokens(self, prompts: Sequence[str]) -> dict:
        texts = [self.clean_text(p) for p in prompts] if self.clean_text is not None else list(prompts)
        return tokenize(self.bundle.tokenizer, texts, device=self.bundle.device, max_length=self.text_max_length)

    def scale(self, model: Any) -> Any:
        raise NotImplementedError

    def modules(self) -> Any:
        return (self.bundle.model,)

    def embed_images(self, candidates: Sequence[Any]) -> Any:
        """(N, D) float32 numpy array of L2-normalized image embeddings."""
        import torch

        with torch.no_grad():
            chunks = [
                image_features(self.bundle.model, self.bundle.pixel_values([c.original for c in batch]))
                for batch in batched(list(candidates), self.batch_size)
            ]
        return self._stack(chunks)

    def embed_texts(self, prompts: Sequence[str]) -> Any:
        """(N, D) float32 numpy array of L2-normalized prompt embeddings."""
        import torch

        with torch.no_grad():
            chunks = [
                text_features(self.bundle.model, **self._tokens(batch))
                for batch in batched(list(prompts), self.batch_size)
            ]
        return self._stack(chunks)

    def _stack(self, chunks: list) -> Any:
        import numpy as np

        if not chunks:
            return np.zeros((0, self.bundle.embed_dim), dtype=np.float32)
        return np.concatenate([c.float().cpu().numpy() for c in chunks]).astype(np.float32)

    def score(self, candidates: Sequence[Any], state: Any = None) -> list[float]:
        import torch

        from prefcli.scorer import require_prompt

        candidates = list(candidates)
        prompts = [require_prompt(c, self.name) for c in candidates]
        if not candidates:
            return []
        # The candidates of one task usually share a prompt: embed each text once.
        unique = list(dict.fromkeys(prompts))
        text = dict(zip(unique, self.embed_texts(unique)))
        images = self.embed_images(candidates)
        with torch.no_grad():
            scale = float(self.scale(self.bundle.model))
        return [float(scale * (images[i] @ text[p])) for i, p in enumerate(prompts)]

    def reward(self, pixels: Any, prompts: Sequence[str] | str | None = None, state: Any = None) -> Any:
        """Differentiable score for B×3×H×W pixels in [0, 1]; one prompt per image, or one for all."""
        prompts = broadcast_prompts(prompts, pixels.shape[0])
        model = self.bundle.model
        img = image_features(model, self.bundle.preprocess_tensor(pixels))
        txt = text_features(model, **self._tokens(prompts))
        return self.scale(model) * (img.float() * txt.float()).sum(-1)
