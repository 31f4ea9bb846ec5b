"""Building the IDEFICS2 preference models: tiny, full-size (meta or random), or real weights.

``build_model(spec)`` returns a :class:`PrefVLM`: the Hugging Face
``Idefics2ForConditionalGeneration`` (optionally QLoRA-quantized and wrapped
by peft LoRA), optional preference tokens, the tokenizer, the template
encoder and the image preprocessor — everything needed to turn a history and
a target into M+ and M-.

The forward pass is our own rather than the HF ``forward``: the image
features are merged into the token embeddings exactly as ``Idefics2Model``
does (vision encoder -> connector -> ``masked_scatter`` at the ``<image>``
positions), the preference tokens are prepended to the *embedded* sequence,
the attention mask is extended with ones for them (padding stays masked),
position ids follow the mask, and the LM head is applied only at each row's
target position (the last real token), never to the whole sequence.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from prefcli import devices
from prefcli.errors import ConfigError, WeightsError, one_line
from prefcli.vlm.pref_tokens import INITS, PreferenceTokens, new_preference_tokens
from prefcli.vlm.preprocess import ImagePreprocessor, stack_padded
from prefcli.vlm.template import STYLES, EncodedSequence, HistoryItem, SequenceEncoder

HISTORY_FEATURES = ("plain", "signed", "pair-difference")

FULL_CONFIG_PATH = Path(__file__).parent / "configs" / "idefics2-8b.json"
DEFAULT_BASE = "HuggingFaceM4/idefics2-8b"
FULL_NAMES = {"idefics2-8b", DEFAULT_BASE}
# The authors' LoRA targets: q/k/v/o/gate/up/down of the text model, the connector's
# modality projection and the perceiver resampler; the vision encoder is never a target.
LORA_TARGET_REGEX = r".*(text_model|modality_projection|perceiver_resampler).*(down_proj|gate_proj|up_proj|k_proj|q_proj|v_proj|o_proj).*$"
# What a weights snapshot needs (no .bin pickles, no other formats).
WEIGHT_FILE_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "*.txt"]
# QLoRA quantizes the language model only; these prefixes stay in full precision.
QLORA_SKIP_MODULES = ["model.vision_model", "model.connector", "lm_head"]


@dataclass
class TinySize:
    """Sizes of a tiny random IDEFICS2 (transformers-test scale)."""

    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 128
    vision_hidden: int = 32
    vision_layers: int = 2
    vision_heads: int = 4
    vision_intermediate: int = 64
    image_size: int = 32
    patch_size: int = 8
    latents: int = 1
    resampler_depth: int = 1
    resampler_heads: int = 2
    resampler_head_dim: int = 16
    resampler_kv_heads: int = 1


@dataclass
class VLMSpec:
    """What to build. ``base``: "tiny", "idefics2-8b" / the hub id, or a weights spec/directory.

    ``weights``: "random" (seeded random init), "meta" (no storage, for parameter
    counts) or "pretrained" (load ``base`` through ``prefcli.weights.resolve_dir``).
    On the meta device ``qlora`` is not applied (nothing to quantize): counts are
    logical parameters; LoRA and preference tokens are still added.
    """

    base: str = "tiny"
    weights: str = "random"
    tokenizer: str = "auto"  # "auto", "tiny", "idefics2" or a directory
    template: str = "preftoken"  # "preftoken", "viper" or "compact"
    max_prompt_tokens: int = 100
    n_pref_tokens: int = 0  # L_p; 0 = no preference tokens
    pref_init: str = "vocab"  # "vocab" or "uniform"
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 8
    lora_dropout: float = 0.1
    qlora: bool = False  # nf4 4-bit language model (needs lora)
    train_vision: bool = True  # with LoRA: keep the vision encoder trainable in full precision
    dtype: str = "float32"
    device: str = "cpu"
    seed: int = 0
    attn_implementation: str = "sdpa"
    offline: bool | None = None
    tiny: TinySize = field(default_factory=TinySize)
    # Toy scale only (compact template), how history images enter (HISTORY_FEATURES):
    # "plain" (the paper's: each image's own features), "signed" (a "-" image's features
    # negated) or "pair-difference" (both images of a pair carry feat(liked) - feat(disliked)).
    # A 2-layer 64-wide model does not learn to bind a label token to the image before it when
    # most taste is shared (docs/toy-results.md); the 8B model reads labels as text.
    history_features: str = "plain"

    def __post_init__(self) -> None:
        if isinstance(self.tiny, dict):
            known = {f.name for f in fields(TinySize)}
            bad = sorted(set(self.tiny) - known)
            if bad:
                raise ConfigError(f"unknown tiny model keys {bad}; known: {sorted(known)}")
            self.tiny = TinySize(**self.tiny)
        if self.weights not in ("random", "meta", "pretrained"):
            raise ConfigError(f"weights must be 'random', 'meta' or 'pretrained', got {self.weights!r}")
        if self.template not in STYLES:
            raise ConfigError(f"template must be one of {STYLES}, got {self.template!r}")
        if self.pref_init not in INITS:
            raise ConfigError(f"pref_init must be one of {INITS}, got {self.pref_init!r}")
        if self.dtype not in devices.DTYPES:
            raise ConfigError(f"dtype must be one of {sorted(devices.DTYPES)}, got {self.dtype!r}")
        if self.qlora and not self.lora:
            raise ConfigError("qlora needs lora: a quantized model trains only through adapters")
        if self.n_pref_tokens < 0:
            raise ConfigError("n_pref_tokens must be >= 0")
        if self.history_features not in HISTORY_FEATURES:
            raise ConfigError(f"history_features must be one of {HISTORY_FEATURES}, got {self.history_features!r}")
        if self.history_features != "plain" and self.template != "compact":
            raise ConfigError(
                f"history_features {self.history_features!r} needs the compact template "
                "(a label token right after each image)"
            )

    @property
    def torch_dtype(self) -> torch.dtype:
        return devices.torch_dtype(self.dtype)

    @property
    def is_tiny(self) -> bool:
        return self.base == "tiny"


# ---------------------------------------------------------------------------
# configs


def full_idefics2_config() -> Any:
    """The real IDEFICS2-8B architecture (shipped JSON, no network)."""
    from transformers import Idefics2Config

    d = json.loads(FULL_CONFIG_PATH.read_text())
    d.pop("_comment", None)
    return Idefics2Config(**d)


def tiny_idefics2_config(
    vocab_size: int, image_token_id: int, pad_token_id: int = 0, size: TinySize | None = None
) -> Any:
    """A tiny random IDEFICS2 config around a given tokenizer."""
    from transformers import Idefics2Config

    s = size or TinySize()
    return Idefics2Config(
        image_token_id=image_token_id,
        tie_word_embeddings=False,
        text_config=dict(
            model_type="mistral",
            vocab_size=vocab_size,
            hidden_size=s.text_hidden,
            intermediate_size=s.text_intermediate,
            num_hidden_layers=s.text_layers,
            num_attention_heads=s.text_heads,
            num_key_value_heads=s.text_kv_heads,
            max_position_embeddings=4096,
            sliding_window=None,
            pad_token_id=pad_token_id,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
        ),
        vision_config=dict(
            hidden_size=s.vision_hidden,
            intermediate_size=s.vision_intermediate,
            num_hidden_layers=s.vision_layers,
            num_attention_heads=s.vision_heads,
            image_size=s.image_size,
            patch_size=s.patch_size,
        ),
        perceiver_config=dict(
            hidden_size=s.text_hidden,
            rms_norm_eps=1e-5,
            resampler_n_latents=s.latents,
            resampler_depth=s.resampler_depth,
            resampler_n_heads=s.resampler_heads,
            resampler_head_dim=s.resampler_head_dim,
            num_key_value_heads=s.resampler_kv_heads,
        ),
    )


# ---------------------------------------------------------------------------
# the model


@dataclass
class Batch:
    """Padded token ids of B sequences and the pixels of all their images, in row-major order."""

    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T), 1 real, 0 padding
    pixel_values: torch.Tensor  # (N_images, 3, S, S)
    padding_side: str = "right"

    def to(self, device: Any) -> Batch:
        return Batch(
            self.input_ids.to(device), self.attention_mask.to(device), self.pixel_values.to(device), self.padding_side
        )


@dataclass
class TargetOutput:
    """Next-token logits at each row's target position, and M+ / M- read from them."""

    logits: torch.Tensor  # (B, V), float32
    plus: torch.Tensor  # (B,)  M+
    minus: torch.Tensor  # (B,)  M-

    @property
    def q(self) -> torch.Tensor:
        """Q(S, z) = softmax(M+, M-)[+] (the one formula: prefcli.vlm.losses.q_score)."""
        from prefcli.vlm.losses import q_score

        return q_score(self.plus, self.minus)


def pad_sequences(
    seqs: Sequence[Sequence[int]], pad_id: int, padding_side: str = "right"
) -> tuple[torch.Tensor, torch.Tensor]:
    if padding_side not in ("left", "right"):
        raise ValueError("padding_side must be 'left' or 'right'")
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        n = len(s)
        sl = slice(0, n) if padding_side == "right" else slice(T - n, T)
        ids[i, sl] = torch.tensor(list(s), dtype=torch.long)
        mask[i, sl] = 1
    return ids, mask


def history_signs(input_ids: torch.Tensor, image_token_id: int, plus_id: int, minus_id: int) -> torch.Tensor:
    """Per position: -1 / +1 at an <image> whose image run is followed by the "-" / "+" label, else 0.

    For the compact template (image run, then its label); the target's run has no label after
    it. The token after a run is the first non-image position to the right (a reversed
    running minimum of positions).
    """
    is_img = input_ids == image_token_id
    T = input_ids.shape[-1]
    pos = torch.arange(T, device=input_ids.device).expand_as(input_ids)
    nxt = torch.where(is_img, torch.full_like(pos, T), pos)
    nxt = torch.flip(torch.cummin(torch.flip(nxt, [-1]), dim=-1).values, [-1])
    after = torch.gather(input_ids, -1, nxt.clamp(max=T - 1))
    after = torch.where(nxt < T, after, torch.full_like(after, -1))
    sign = torch.zeros(input_ids.shape, dtype=torch.float32, device=input_ids.device)
    sign = torch.where(is_img & (after == minus_id), -1.0, sign)
    return torch.where(is_img & (after == plus_id), 1.0, sign)


def transform_history_features(
    emb: torch.Tensor,
    input_ids: torch.Tensor,
    image_token_id: int,
    plus_id: int,
    minus_id: int,
    image_seq_len: int,
    mode: str,
) -> torch.Tensor:
    """The toy-only ``history_features`` modes over embeddings that already hold the image features.

    "signed": each history image's features times its label's sign. "pair-difference":
    history images come in pairs (consecutive items, as every history order keeps them), and
    both items of a pair carry s_a f_a + s_b f_b = f(liked) - f(disliked): what the images share
    (the prompt's content, the common look) cancels and only the preference is left.
    """
    sign = history_signs(input_ids, image_token_id, plus_id, minus_id)
    if mode == "signed":
        return emb * torch.where(sign == 0, 1.0, sign).unsqueeze(-1).to(emb.dtype)
    out = emb.clone()
    L, D = int(image_seq_len), emb.shape[-1]
    for b in range(emb.shape[0]):
        pos = (sign[b] != 0).nonzero().flatten()
        if pos.numel() == 0:
            continue
        if pos.numel() % (2 * L):
            raise ValueError(f"history_features 'pair-difference' needs whole pairs; got {pos.numel() // L} images")
        f = emb[b, pos].view(-1, 2, L, D)
        s = sign[b, pos].view(-1, 2, L)[..., :1].unsqueeze(-1).to(emb.dtype)  # (P, 2, 1, 1)
        d = (s * f).sum(1, keepdim=True)  # (P, 1, L, D)
        out[b, pos] = d.expand(-1, 2, -1, -1).reshape(-1, D)
    return out


def last_real_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of a 0/1 mask (works for left and right padding)."""
    T = mask.shape[1]
    return (T - 1) - torch.flip(mask, dims=[1]).argmax(dim=1)


def positions_from_mask(mask: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """Position ids that skip padding: 0, 1, 2, ... over the real tokens of each row."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0) + offset


class PrefVLM(nn.Module):
    """IDEFICS2 + optional preference tokens, with the template and preprocessing that go with it."""

    def __init__(
        self,
        hf_model: nn.Module,
        core: nn.Module,
        tokenizer: Any,
        spec: VLMSpec,
        pref_tokens: PreferenceTokens | None = None,
    ) -> None:
        super().__init__()
        self.hf_model = hf_model  # the peft wrapper when LoRA is on, else the core itself
        object.__setattr__(self, "_core", core)  # same parameters; not registered twice
        self.pref_tokens = pref_tokens
        self.tokenizer = tokenizer
        self.spec = spec
        cfg = core.config
        self.image_seq_len = int(cfg.perceiver_config.resampler_n_latents)
        self.image_token_id = int(cfg.image_token_id)
        self.encoder = SequenceEncoder(tokenizer, spec.template, self.image_seq_len, spec.max_prompt_tokens)
        if self.encoder.image_token_id != self.image_token_id:
            raise WeightsError(
                f"tokenizer's <image> id {self.encoder.image_token_id} != model image_token_id {self.image_token_id}"
            )
        self.plus_id, self.minus_id = self.encoder.plus_id, self.encoder.minus_id
        vocab = int(cfg.text_config.vocab_size)
        if len(tokenizer) > vocab:
            raise WeightsError(f"tokenizer has {len(tokenizer)} tokens but the model's vocabulary is {vocab}")
        image_size = int(cfg.vision_config.image_size)
        self.preprocess = (
            ImagePreprocessor.tiny(image_size) if spec.is_tiny or image_size < 224 else ImagePreprocessor.full()
        )

    # -- parts -------------------------------------------------------------
    @property
    def core(self) -> nn.Module:
        """The (unwrapped) Idefics2ForConditionalGeneration; LoRA layers live inside it."""
        return self._core

    @property
    def inner(self) -> nn.Module:
        return self._core.model

    @property
    def text_model(self) -> nn.Module:
        return self._core.model.text_model

    @property
    def lm_head(self) -> nn.Module:
        return self._core.lm_head

    @property
    def n_pref_tokens(self) -> int:
        return 0 if self.pref_tokens is None else self.pref_tokens.n_tokens

    @property
    def device(self) -> torch.device:
        return self.text_model.get_input_embeddings().weight.device

    def add_pref_tokens(self, n_tokens: int, init: str = "vocab", seed: int = 0) -> PreferenceTokens:
        """Attach fresh preference tokens (stage 2 of training)."""
        emb = self.text_model.get_input_embeddings().weight
        tok = new_preference_tokens(n_tokens, emb.shape[1], init=init, embedding=emb, seed=seed)
        self.pref_tokens = tok.to(device=emb.device, dtype=torch.float32 if emb.dtype == torch.uint8 else emb.dtype)
        return self.pref_tokens

    def set_pref_tokens(self, tokens: PreferenceTokens | None) -> None:
        if tokens is not None:
            d = self.text_model.get_input_embeddings().weight.shape[1]
            if tokens.dim != d:
                raise WeightsError(f"preference tokens have dimension {tokens.dim}, the model {d}")
            emb = self.text_model.get_input_embeddings().weight
            tokens = tokens.to(device=emb.device, dtype=emb.dtype)
        self.pref_tokens = tokens

    # -- inputs ------------------------------------------------------------
    def pixels(self, images: Sequence[Any], cache: dict | None = None) -> torch.Tensor:
        """Preprocess images (PIL or Candidates); a dict `cache` keyed by image_id saves repeats."""
        from prefcli.stage_times import PREPROCESS, timed

        with timed(PREPROCESS):
            return self._pixels(images, cache)

    def _pixels(self, images: Sequence[Any], cache: dict | None) -> torch.Tensor:
        ready = self._take_ahead(images)
        if cache is None and not ready:
            return self.preprocess(images).to(self.device)
        out, todo = [None] * len(images), []
        for i, im in enumerate(images):
            key = getattr(im, "image_id", None)
            if i in ready:
                out[i] = ready[i]
            elif cache is not None and key is not None and key in cache:
                out[i] = cache[key]
            else:
                todo.append(i)
        if todo:
            fresh = self.preprocess([images[i] for i in todo])
            for j, i in enumerate(todo):
                out[i] = fresh[j]
                key = getattr(images[i], "image_id", None)
                if key is not None and cache is not None:
                    cache[key] = fresh[j]
        if not out:
            return self.preprocess([]).to(self.device)
        return stack_padded(out).to(self.device)

    #: Images preprocessed ahead (`prepare_pixels`) and not yet taken: at most this many are kept.
    AHEAD_MAX = 128

    def prepare_pixels(self, images: Sequence[Any]) -> None:
        """Preprocess images (Candidates) now, one by one, for a later `pixels` call to take by image id.

        What the runner's decode threads call (`--workers`), so preprocessing overlaps the model. An
        image's tensor is the same alone as in a batch: each image is resized on its own and a batch
        only pads them onto one canvas (``stack_padded``), so the numbers do not change.
        """
        import threading
        from collections import OrderedDict

        from prefcli.stage_times import PREPROCESS, timed

        if "_ahead" not in self.__dict__:
            self.__dict__["_ahead"] = (OrderedDict(), threading.Lock())
        ahead, lock = self.__dict__["_ahead"]
        for im in images:
            key = getattr(im, "image_id", None)
            if key is None or key in ahead:
                continue
            with timed(PREPROCESS):
                row = self.preprocess([im])[0]
            with lock:
                ahead[key] = row
                while len(ahead) > self.AHEAD_MAX:  # prepared but never asked for (a model that kept the features)
                    ahead.popitem(last=False)

    def _take_ahead(self, images: Sequence[Any]) -> dict[int, torch.Tensor]:
        """{index: tensor} of the images `prepare_pixels` made, removed from its store."""
        if "_ahead" not in self.__dict__:
            return {}
        ahead, lock = self.__dict__["_ahead"]
        got: dict[int, torch.Tensor] = {}
        with lock:
            for i, im in enumerate(images):
                key = getattr(im, "image_id", None)
                if key is not None and key in ahead:
                    got[i] = ahead.pop(key)
        return got

    def make_batch(
        self,
        seqs: Sequence[EncodedSequence],
        padding_side: str = "right",
        pixel_cache: dict | None = None,
        pixel_values: torch.Tensor | None = None,
    ) -> Batch:
        """Pad encoded sequences into a Batch (images preprocessed unless `pixel_values` is given)."""
        ids, mask = pad_sequences([s.ids for s in seqs], self.encoder.pad_id, padding_side)
        if pixel_values is None:
            pixel_values = self.pixels([im for s in seqs for im in s.images], pixel_cache)
        return Batch(ids.to(self.device), mask.to(self.device), pixel_values, padding_side)

    # -- forward -----------------------------------------------------------
    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalized pixels -> (N, image_seq_len, D) through SigLIP and the connector."""
        inner = self.inner
        vdtype = inner.vision_model.embeddings.patch_embedding.weight.dtype
        pv = pixel_values.to(device=self.device, dtype=vdtype)
        p = self._core.config.vision_config.patch_size
        n, _, h, w = pv.shape
        real = ~torch.isnan(pv).any(dim=1)  # PAD marks the canvas around a smaller image
        if bool(real.all()):
            pam = torch.ones((n, h // p, w // p), dtype=torch.bool, device=pv.device)
        else:
            # As transformers' Idefics2Model.get_image_features masks a padded batch: zeros
            # under the mask, and a patch is the image's only when all its pixels are.
            pv = pv.masked_fill(~real.unsqueeze(1), 0.0)
            grid = real[:, : h // p * p, : w // p * p].unfold(1, p, p).unfold(2, p, p)
            pam = grid.flatten(-2).all(dim=-1)
        hs = inner.vision_model(pixel_values=pv, patch_attention_mask=pam).last_hidden_state
        return inner.connector(hs, attention_mask=pam.view(n, -1))

    def embed(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None) -> torch.Tensor:
        """Token embeddings with the image features scattered over the <image> positions."""
        emb = self.text_model.get_input_embeddings()(input_ids)
        is_img = input_ids == self.image_token_id
        n_tok = int(is_img.sum())
        if n_tok == 0:
            return emb
        if pixel_values is None or pixel_values.shape[0] * self.image_seq_len != n_tok:
            have = 0 if pixel_values is None else pixel_values.shape[0]
            raise ValueError(f"{n_tok} <image> tokens need {n_tok // self.image_seq_len} images, got {have}")
        feats = self.image_features(pixel_values).reshape(-1, emb.shape[-1]).to(emb.dtype)
        return self.scatter_images(emb, input_ids, feats)

    def scatter_images(self, emb: torch.Tensor, input_ids: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """Image features (one row per <image> token, in order) over the <image> positions of `emb`.

        The one place every forward path (training, scoring, analysis) merges images, so the
        toy-only ``history_features`` apply everywhere alike.
        """
        is_img = input_ids == self.image_token_id
        out = emb.masked_scatter(is_img.unsqueeze(-1), feats.to(emb.dtype))
        if self.spec.history_features != "plain":
            out = transform_history_features(
                out,
                input_ids,
                self.image_token_id,
                self.plus_id,
                self.minus_id,
                self.image_seq_len,
                self.spec.history_features,
            )
        return out

    def with_pref_tokens(
        self, embeds: torch.Tensor, mask: torch.Tensor, padding_side: str = "right"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[P_v; x]: tokens before each row's first real token; the mask covers them, pads stay 0."""
        if self.pref_tokens is None:
            return embeds, mask
        B = embeds.shape[0]
        L = self.pref_tokens.n_tokens
        P = self.pref_tokens(B).to(embeds.dtype)
        e = torch.cat([P, embeds], dim=1)
        m = torch.cat([torch.ones((B, L), dtype=mask.dtype, device=mask.device), mask], dim=1)
        if padding_side == "left" and bool((mask == 0).any()):
            # Move each row's left pads in front of the tokens: stable sort by "is real".
            order = torch.sort(m, dim=1, stable=True).indices
            e = torch.gather(e, 1, order.unsqueeze(-1).expand_as(e))
            m = torch.gather(m, 1, order)
        return e, m

    def run_text(
        self,
        embeds: torch.Tensor,
        mask: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        cache: Any = None,
        use_cache: bool = False,
    ) -> Any:
        if position_ids is None:
            position_ids = positions_from_mask(mask)
        return self.text_model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids, cache=cache, use_cache=use_cache
        )

    def head(self, hidden: torch.Tensor) -> TargetOutput:
        """LM head on (B, D) target hidden states -> full-vocabulary logits and M+/M-."""
        logits = self.lm_head(hidden.to(self.lm_head.weight.dtype)).float()
        return TargetOutput(logits, logits[:, self.plus_id], logits[:, self.minus_id])

    def forward(self, batch: Batch) -> TargetOutput:
        """M+ and M- at the last real position of every row (uncached, differentiable)."""
        embeds = self.embed(batch.input_ids, batch.pixel_values)
        embeds, mask = self.with_pref_tokens(embeds, batch.attention_mask, batch.padding_side)
        out = self.run_text(embeds, mask, use_cache=False)
        idx = last_real_index(mask)
        hidden = out.last_hidden_state[torch.arange(mask.shape[0], device=mask.device), idx]
        return self.head(hidden)

    # -- conveniences ------------------------------------------------------
    def score_sequences(
        self, seqs: Sequence[EncodedSequence], padding_side: str = "right", pixel_cache: dict | None = None
    ) -> TargetOutput:
        return self(self.make_batch(seqs, padding_side, pixel_cache))

    def pair_logits(
        self,
        contexts: Sequence[Sequence[HistoryItem]],
        liked: Sequence[Any],
        disliked: Sequence[Any],
        prompts: Sequence[str | None] | None = None,
        pixel_cache: dict | None = None,
    ) -> tuple[TargetOutput, TargetOutput]:
        """Training pairs: each context with its liked and its disliked target, in one batch."""
        prompts = list(prompts) if prompts is not None else [None] * len(contexts)
        seqs = []
        for items, z, pr in zip(contexts, liked, prompts):
            seqs.append(self.encoder.encode(items, z, pr))
        for items, z, pr in zip(contexts, disliked, prompts):
            seqs.append(self.encoder.encode(items, z, pr))
        out = self.score_sequences(seqs, pixel_cache=pixel_cache)
        b = len(contexts)
        pos = TargetOutput(out.logits[:b], out.plus[:b], out.minus[:b])
        neg = TargetOutput(out.logits[b:], out.plus[b:], out.minus[b:])
        return pos, neg

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


# ---------------------------------------------------------------------------
# trainability and counts


def set_trainable(
    vlm: PrefVLM, *, base: bool = False, lora: bool = True, vision: bool | None = None, tokens: bool = True
) -> None:
    """Choose what trains: all base weights, LoRA adapters, the vision encoder, preference tokens.

    ``vision=False`` with ``base=True`` keeps the whole image encoder (SigLIP and the
    connector) as it is while the rest trains: a toy model's attributes stage taught it what
    the images show, and the preference stage should not wear that away. ``None``: the
    vision encoder trains exactly when the base weights do.
    """
    vision = base if vision is None else vision
    for name, p in vlm.core.named_parameters():
        if "lora_" in name:
            p.requires_grad_(lora)
        elif ".vision_model." in f".{name}":
            p.requires_grad_(vision and p.is_floating_point())
        elif ".connector." in f".{name}":
            p.requires_grad_(base and vision and p.is_floating_point())
        else:
            p.requires_grad_(base and p.is_floating_point())
    if vlm.pref_tokens is not None:
        vlm.pref_tokens.weight.requires_grad_(tokens)


def _logical_numel(p: torch.Tensor) -> int:
    # bitsandbytes packs two 4-bit weights per uint8 byte.
    if p.dtype == torch.uint8 and getattr(p, "quant_state", None) is not None:
        return int(p.numel() * 2)
    return int(p.numel())


def parameter_counts(vlm: PrefVLM) -> dict[str, dict[str, int]]:
    """Total and trainable parameters per part: vision, connector, text, lm_head, lora, pref_tokens."""
    parts = ("vision", "connector", "text", "lm_head", "lora", "pref_tokens", "other")
    out = {k: {"total": 0, "trainable": 0} for k in parts}

    def part_of(name: str) -> str:
        if "lora_" in name:
            return "lora"
        if "vision_model" in name:
            return "vision"
        if "connector" in name:
            return "connector"
        if "text_model" in name:
            return "text"
        if "lm_head" in name:
            return "lm_head"
        return "other"

    for name, p in vlm.core.named_parameters():
        k = part_of(name)
        n = _logical_numel(p)
        out[k]["total"] += n
        out[k]["trainable"] += n if p.requires_grad else 0
    if vlm.pref_tokens is not None:
        n = vlm.pref_tokens.weight.numel()
        out["pref_tokens"] = {"total": n, "trainable": n if vlm.pref_tokens.weight.requires_grad else 0}
    out["all"] = {
        "total": sum(v["total"] for v in out.values()),
        "trainable": sum(v["trainable"] for v in out.values()),
    }
    return {k: v for k, v in out.items() if v["total"] or k == "all"}


# ---------------------------------------------------------------------------
# building


def _resolve_tokenizer(spec: VLMSpec, weights_dir: Path | None) -> Any:
    from prefcli.vlm.tokenizer import load_tokenizer

    t = spec.tokenizer
    if t == "auto":
        if weights_dir is not None and any((weights_dir / f).exists() for f in ("tokenizer.json", "tokenizer.model")):
            return load_tokenizer(weights_dir)
        t = "tiny" if spec.is_tiny else "idefics2"
    return load_tokenizer(t)


def _lora_config(spec: VLMSpec) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=spec.lora_r,
        lora_alpha=spec.lora_alpha,
        lora_dropout=spec.lora_dropout,
        target_modules=LORA_TARGET_REGEX,
        bias="none",
    )


def _bnb_config(spec: VLMSpec) -> Any:
    from transformers import BitsAndBytesConfig

    from prefcli import messages

    messages.allow_bitsandbytes()  # quantizing: what bitsandbytes says now concerns this run

    compute = torch.bfloat16 if spec.torch_dtype == torch.float32 else spec.torch_dtype
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=compute,
        llm_int8_skip_modules=list(QLORA_SKIP_MODULES),
    )


def _load_pretrained(path: Path, spec: VLMSpec) -> nn.Module:
    from transformers import Idefics2ForConditionalGeneration

    kw: dict[str, Any] = {"dtype": spec.torch_dtype, "attn_implementation": spec.attn_implementation}
    if spec.qlora:
        kw["quantization_config"] = _bnb_config(spec)
        kw["device_map"] = {"": spec.device}
    from prefcli.weights import check_safetensors_folder

    check_safetensors_folder(path, "IDEFICS2")  # a garbage file is one line naming it, not a Rust error
    try:
        model = Idefics2ForConditionalGeneration.from_pretrained(str(path), **kw)
    except (OSError, ValueError) as e:
        raise WeightsError(f"{path}: cannot load IDEFICS2 weights ({one_line(e)})") from None
    except Exception as e:  # noqa: BLE001 - transformers and safetensors raise their own types; never a traceback
        raise WeightsError(f"{path}: cannot load IDEFICS2 weights ({type(e).__name__}: {one_line(e)})") from None
    if not spec.qlora:
        model = model.to(spec.device)
    return model


def build_model(spec: VLMSpec | None = None, **overrides: Any) -> PrefVLM:
    """Build a PrefVLM from a spec (keyword arguments override its fields)."""
    import dataclasses

    spec = dataclasses.replace(spec or VLMSpec(), **overrides) if overrides or spec is None else spec
    from transformers import Idefics2ForConditionalGeneration

    weights_dir: Path | None = None
    if spec.weights == "pretrained":
        from prefcli.weights import resolve_dir

        src = DEFAULT_BASE if spec.base == "idefics2-8b" else spec.base
        weights_dir = Path(resolve_dir(src, allow_patterns=WEIGHT_FILE_PATTERNS, offline=spec.offline))
    tokenizer = _resolve_tokenizer(spec, weights_dir)

    if spec.weights == "pretrained":
        core = _load_pretrained(weights_dir, spec)
    else:
        if spec.is_tiny:
            config = tiny_idefics2_config(
                len(tokenizer), int(tokenizer.convert_tokens_to_ids("<image>")), tokenizer.pad_token_id or 0, spec.tiny
            )
        elif spec.base in FULL_NAMES:
            config = full_idefics2_config()
        else:
            raise ConfigError(f"base {spec.base!r}: use 'tiny', 'idefics2-8b' or weights='pretrained'")
        config._attn_implementation = spec.attn_implementation
        if spec.weights == "meta":
            with torch.device("meta"):
                core = Idefics2ForConditionalGeneration(config)
        else:
            torch.manual_seed(spec.seed)
            with torch.device(spec.device):
                core = Idefics2ForConditionalGeneration(config)
            core = core.to(spec.torch_dtype)
            if spec.qlora:
                # Quantize through the very path real weights take: save, reload with bnb.
                with tempfile.TemporaryDirectory(prefix="prefcli-qlora-") as d:
                    core.save_pretrained(d)
                    core = _load_pretrained(Path(d), spec)
    core.eval()

    hf_model: nn.Module = core
    if spec.lora:
        from peft import get_peft_model, prepare_model_for_kbit_training

        if spec.qlora:
            core = prepare_model_for_kbit_training(core, use_gradient_checkpointing=False)
        hf_model = get_peft_model(core, _lora_config(spec))
        # peft freezes everything but the adapters; the paper trains the vision encoder too.
        if spec.train_vision:
            for p in core.model.vision_model.parameters():
                if p.is_floating_point():
                    p.requires_grad_(True)

    vlm = PrefVLM(hf_model, core, tokenizer, spec)
    if spec.n_pref_tokens:
        if spec.weights == "meta":
            d = core.config.text_config.hidden_size
            with torch.device("meta"):
                vlm.pref_tokens = PreferenceTokens(spec.n_pref_tokens, d)
        else:
            vlm.add_pref_tokens(spec.n_pref_tokens, spec.pref_init, seed=spec.seed)
    return vlm


def tiny_vlm(**overrides: Any) -> PrefVLM:
    """A tiny random PrefVLM (tiny tokenizer), for tests and toy training."""
    return build_model(VLMSpec(**{"base": "tiny", "weights": "random", **overrides}))
