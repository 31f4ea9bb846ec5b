"""ViPer's proxy metric and zero-shot IDEFICS2 as history-conditioned scorers.

ViPer (Salehi et al., ECCV 2024) scores a query image for one person with
IDEFICS2-8B plus the LoRA adapter ``EPFL-VILAB/Metric-ViPer``, its processor
set to longest_edge 448 / shortest_edge 378 without image splitting. The
history is a chat, each pair disliked first, then liked::

    User:<image>Score for this image?<end_of_utterance>\\nAssistant: -<end_of_utterance>\\n
    User:<image>Score for this image?<end_of_utterance>\\nAssistant: +<end_of_utterance>\\n
    ...
    User:<image>Score for this image?<end_of_utterance>\\nAssistant:

and the score is exp(l+) / (exp(l+) + exp(l-)) over the next-token logits of
"+" and "-" (ids taken from the tokenizer, not hard-coded). ``idefics`` is the
same base and template without the adapter: the zero-shot row.

Differences from the reference code, both deliberate: the caller's image list
is never appended to (the reference appends the query in place), and the
history turns are encoded once per user and cached (the scores are the same
to fp32 rounding). Images go through ViPer's processor exactly, at any aspect
ratio (``ViperPreprocessor``: aspect kept, padding masked).

Weights: ``viper`` takes the adapter as ``--weights`` (default
``hf-hub:EPFL-VILAB/Metric-ViPer`` or a local adapter folder) and the base as
the ``base`` option (default ``HuggingFaceM4/idefics2-8b`` or a local folder);
``idefics`` takes the base as ``--weights``. ``tiny`` / ``tiny:SEED`` builds
a tiny random model with ViPer's template (option ``tokenizer``: "tiny" or
"idefics2", the real tokenizer built offline).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefcli.errors import WeightsError
from prefcli.vlm.preprocess import FULL_SIZE, MEAN, PAD, STD, ImagePreprocessor
from prefcli.vlm.scorer import CachedVLMScorer
from prefcli.weights import is_tiny, parse, resolve_dir, tiny_seed

# Only the adapter's config and safetensors weights are fetched; a .bin adapter is never unpickled.
ADAPTER_PATTERNS = ["adapter_config.json", "adapter_model.safetensors", "*.json", "*.md"]


class ViperPreprocessor(ImagePreprocessor):
    """ViPer's processor: longest_edge 448, shortest_edge 378, no splitting, no 512 pre-resize, the aspect kept.

    ViPer's metric.py (EPFL-VILAB/ViPer, metric.py lines 30-34 and 58) hands the
    images as opened to ``Idefics2Processor``: each is resized keeping its aspect
    ratio (longest side at most 448, both at least 378) and the batch is padded
    to a common canvas with a pixel attention mask. Here each image keeps its
    own size, the canvas around it is ``PAD`` (masked the same way by
    ``PrefVLM.image_features``), so an image's features do not depend on the
    images batched beside it. A tiny model gets the same processor at its own
    scale (``scaled``).
    """

    def __init__(
        self, longest_edge: int = FULL_SIZE["longest_edge"], shortest_edge: int = FULL_SIZE["shortest_edge"]
    ) -> None:
        super().__init__(image_size=longest_edge, pre_resize=None, use_hf_processor=True)
        self.size = {"longest_edge": int(longest_edge), "shortest_edge": int(shortest_edge)}

    @classmethod
    def scaled(cls, image_size: int) -> ViperPreprocessor:
        """ViPer's 448 / 378 at a tiny model's image size (32 -> 32 / 27: 378/448 = 27/32 exactly)."""
        return cls(image_size, round(image_size * FULL_SIZE["shortest_edge"] / FULL_SIZE["longest_edge"]))

    def hf_processor(self) -> Any:
        if self._proc is None:
            from transformers import Idefics2ImageProcessor

            self._proc = Idefics2ImageProcessor(do_image_splitting=False, size=dict(self.size))
        return self._proc

    def __call__(self, images: Sequence[Any]) -> Any:
        import torch

        pils = [self._pil(im) for im in images]
        if not pils:
            return torch.zeros(0, 3, self.image_size, self.image_size)
        out = self.hf_processor()(images=[[p] for p in pils], return_tensors="pt")
        pv = out["pixel_values"][:, 0].float()  # (N, 3, H, W) on the batch's canvas, zero-padded
        real = out["pixel_attention_mask"][:, 0].bool()
        return pv if bool(real.all()) else pv.masked_fill(~real.unsqueeze(1), PAD)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The size an image of (height, width) is resized to, by transformers' own Idefics2 rule."""
        import torch
        from transformers.image_processing_utils import SizeDict
        from transformers.models.idefics2.image_processing_idefics2 import get_resize_output_image_size

        return tuple(get_resize_output_image_size(torch.empty(0, height, width), SizeDict(**self.size)))

    def tensor(self, pixels: Any) -> Any:
        """Differentiable: (B, 3, H, W) in [0, 1] resized as ``__call__`` resizes such an image (aspect kept)."""
        import torch.nn.functional as F

        h, w = self.output_size(int(pixels.shape[-2]), int(pixels.shape[-1]))
        x = pixels
        if tuple(x.shape[-2:]) != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        return (x - MEAN) / STD


def viper_preprocessor(vlm: Any) -> ViperPreprocessor:
    """ViPer's processor for this model: 448 / 378 for IDEFICS2 itself, scaled to a tiny model's image size."""
    size = int(vlm.core.config.vision_config.image_size)
    return ViperPreprocessor() if vlm.preprocess.use_hf_processor else ViperPreprocessor.scaled(size)


def load_adapter_dir(spec: str, offline: bool | None = None) -> Path:
    """A local folder holding a peft LoRA adapter (adapter_config.json + adapter_model.safetensors)."""
    d = Path(resolve_dir(spec, allow_patterns=ADAPTER_PATTERNS, offline=offline))
    if not (d / "adapter_config.json").is_file():
        raise WeightsError(f"{spec}: no adapter_config.json in {d}; expected a peft LoRA adapter folder")
    if not (d / "adapter_model.safetensors").is_file():
        extra = (
            " (only adapter_model.bin: prefcli does not unpickle it; re-save it as safetensors)"
            if (d / "adapter_model.bin").is_file()
            else ""
        )
        raise WeightsError(f"{spec}: no adapter_model.safetensors in {d}{extra}")
    return d


def attach_adapter(vlm: Any, adapter_dir: Path) -> Any:
    """Load a LoRA adapter with peft and merge it into the base weights (inference is then plain IDEFICS2)."""
    from peft import PeftModel

    from prefcli.vlm.model import PrefVLM
    from prefcli.weights import check_safetensors_folder

    check_safetensors_folder(adapter_dir, "LoRA adapter")  # a garbage file is one line naming it
    try:
        peft_model = PeftModel.from_pretrained(vlm.core, str(adapter_dir), is_trainable=False)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise WeightsError(
            f"{adapter_dir}: cannot load the LoRA adapter onto IDEFICS2 ({' '.join(str(e).split())[:300]})"
        ) from None
    except Exception as e:  # noqa: BLE001 - peft and safetensors raise their own types; never a traceback
        raise WeightsError(
            f"{adapter_dir}: cannot load the LoRA adapter onto IDEFICS2 ({type(e).__name__}: {' '.join(str(e).split())[:300]})"
        ) from None
    merged = peft_model.merge_and_unload()
    merged.eval()
    return PrefVLM(merged, merged, vlm.tokenizer, vlm.spec, vlm.pref_tokens)


class IdeficsScorer(CachedVLMScorer):
    """Zero-shot IDEFICS2 with ViPer's template. ``--weights``: the base (hub id, local folder) or tiny.

    Options: ``batch_size``, ``tokenizer`` (tiny models: "tiny" or "idefics2"), ``offline``,
    ``device``, ``dtype`` (default float32, as the reference code).
    """

    default_name = "idefics"
    #: Tiny viper and tiny idefics are different random networks (as the real ones differ by the adapter).
    tiny_seed_offset = 0

    def __init__(
        self,
        weights: str | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        *,
        spec: Any = None,
        options: Any = None,
    ):
        self._weights_id = ""
        super().__init__(weights, device, dtype, spec=spec, options=options)

    def _tiny(self, spec: str) -> Any:
        from prefcli.vlm.model import tiny_vlm

        seed = tiny_seed(spec) + self.tiny_seed_offset
        self._weights_id = f"tiny:{tiny_seed(spec)}/{self.default_name}" + (
            "" if self.options.tokenizer == "tiny" else f"/{self.options.tokenizer}"
        )
        kw = {"dtype": self.dtype} if self.dtype else {}
        vlm = tiny_vlm(template="viper", tokenizer=self.options.tokenizer, seed=seed, device=self.device, **kw)
        vlm.preprocess = viper_preprocessor(vlm)
        return vlm

    def _pretrained(self, base: str, adapter_dir: Path | None, flag: str = "--weights") -> Any:
        from prefcli.vlm.model import WEIGHT_FILE_PATTERNS, VLMSpec, build_model

        # Resolved here, by the one weights resolver, so offline advice names the flag the user gave.
        base_src = str(resolve_dir(base, allow_patterns=WEIGHT_FILE_PATTERNS, offline=self.options.offline, flag=flag))
        spec = VLMSpec(
            base=base_src,
            weights="pretrained",
            template="viper",
            dtype=self.dtype or "float32",
            device=self.device,
            offline=self.options.offline,
        )
        vlm = build_model(spec)
        if adapter_dir is not None:
            vlm = attach_adapter(vlm, adapter_dir)
        vlm.preprocess = viper_preprocessor(vlm)
        return vlm

    def _build(self) -> Any:
        base = self.weights
        if is_tiny(base):
            return self._tiny(base)
        from prefcli.weights import identity

        self._weights_id = identity(base)
        return self._pretrained(base, None)

    @property
    def weights_id(self) -> str:
        return self._weights_id or str(self.weights)


class ViperScorer(IdeficsScorer):
    """ViPer's proxy metric. ``--weights``: the LoRA adapter (default hf-hub:EPFL-VILAB/Metric-ViPer,
    or a local adapter folder) or tiny; option ``base``: the IDEFICS2 base (default
    HuggingFaceM4/idefics2-8b, or a local folder). Other options as ``idefics``."""

    default_name = "viper"
    tiny_seed_offset = 1000

    def _build(self) -> Any:
        adapter = self.weights
        if is_tiny(adapter):
            return self._tiny(adapter)
        # The adapter first: a missing adapter fails in a second, before 16 GB of base weights load.
        adapter_dir = load_adapter_dir(adapter, self.options.offline)
        from prefcli.weights import identity

        # The adapter by content (or hub commit); the base is the `base` option, fingerprinted in the identity.
        self._weights_id = identity(str(adapter_dir)) if parse(adapter).kind == "local" else identity(adapter)
        return self._pretrained(self.options.base, adapter_dir, flag="-o base")
