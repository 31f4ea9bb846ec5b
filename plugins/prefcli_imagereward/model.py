"""ImageReward's network rebuilt from maintained libraries, and its checkpoint mapped onto it.

ImageReward (Xu et al., 2023) is BLIP: a ViT image encoder whose patch tokens
feed the cross-attention of a BERT text encoder, plus an MLP head on the
text encoder's first ([CLS]) token. The published package builds BLIP from
copied 2022 code (timm 0.6.13, transformers 4.x internals). Here:

- the image tower is timm's `VisionTransformer`, the same layout as BLIP's
  `vit.py` (pre-norm blocks, fused qkv with bias, class token, LayerNorm eps
  1e-6, final norm, no head); its parameter names equal BLIP's
  `visual_encoder.*` names;
- the text tower is transformers' `BlipTextModel`, the maintained port of
  BLIP's `med.py` BertModel. transformers' plain `BertModel` cannot be used:
  its cross-attention keys/values read `hidden_size` (768) features, while
  BLIP's read the ViT width (1024 for ViT-L), which `BlipTextConfig` names
  `encoder_hidden_size`;
- the head is the MLP 768→1024→128→64→16→1 with dropouts 0.2/0.2/0.1 and no
  activations, as in the package, so its keys keep their indices 0,2,4,6,7.

`map_official_state_dict` maps every key of an official `ImageReward.pt`
onto this model and refuses a checkpoint with any key missing, left over
(beyond BLIP's unused contrastive projections) or of the wrong shape.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from prefcli.errors import WeightsError
from prefcli.heads import reward_mlp

# ImageReward's reward normalization (mean and std of raw rewards on its training set).
REWARD_MEAN = 0.16717362830052426
REWARD_STD = 1.0333394966054072
MAX_TEXT_LENGTH = 35
IMAGE_SIZE = 224

# BLIP's ViT sizes, as `create_vit` in BLIP builds them; "tiny" is for tests and demos.
VIT_CONFIGS: dict[str, dict[str, int]] = {
    "large": dict(img_size=224, patch_size=16, embed_dim=1024, depth=24, num_heads=16),
    "base": dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "tiny": dict(img_size=224, patch_size=16, embed_dim=32, depth=2, num_heads=2),
}

VISUAL_PREFIX = "blip.visual_encoder."
TEXT_PREFIX = "blip.text_encoder."
MLP_PREFIX = "mlp.layers."
# In the official checkpoint but not used by the reward: BLIP's contrastive
# projections, and the position-id buffer med.py saved (BlipTextModel rebuilds it).
UNUSED_PREFIXES = ("blip.vision_proj.", "blip.text_proj.")
UNUSED_KEYS = ("blip.text_encoder.embeddings.position_ids",)


def build_vit(name: str) -> Any:
    from timm.models.vision_transformer import VisionTransformer

    cfg = VIT_CONFIGS[name]
    return VisionTransformer(
        **cfg,
        mlp_ratio=4.0,
        qkv_bias=True,
        num_classes=0,
        global_pool="",
        class_token=True,
        norm_layer=functools.partial(torch.nn.LayerNorm, eps=1e-6),
        drop_path_rate=0.0,
    )


def text_config(med_config: dict, encoder_width: int) -> Any:
    """A BlipTextConfig from med_config.json; the cross-attention width is the ViT's, as BLIP sets it."""
    from transformers import BlipTextConfig

    if not med_config.get("add_cross_attention", False):
        raise WeightsError(
            "med_config.json: add_cross_attention must be true for ImageReward (the text encoder attends to the image)"
        )
    if med_config.get("position_embedding_type", "absolute") != "absolute":
        raise WeightsError("med_config.json: only absolute position embeddings are supported")
    return BlipTextConfig(
        vocab_size=int(med_config["vocab_size"]),
        hidden_size=int(med_config["hidden_size"]),
        encoder_hidden_size=int(encoder_width),
        intermediate_size=int(med_config["intermediate_size"]),
        num_hidden_layers=int(med_config["num_hidden_layers"]),
        num_attention_heads=int(med_config["num_attention_heads"]),
        max_position_embeddings=int(med_config["max_position_embeddings"]),
        hidden_act=med_config.get("hidden_act", "gelu"),
        layer_norm_eps=float(med_config.get("layer_norm_eps", 1e-12)),
        hidden_dropout_prob=float(med_config.get("hidden_dropout_prob", 0.0)),
        attention_probs_dropout_prob=float(med_config.get("attention_probs_dropout_prob", 0.0)),
        pad_token_id=int(med_config.get("pad_token_id", 0)),
        bos_token_id=None,
        eos_token_id=None,
        sep_token_id=None,
        is_decoder=True,  # builds the cross-attention layers; forward runs bidirectionally
        use_cache=False,
    )


class ImageRewardNet(nn.Module):
    """visual (timm ViT) → text (BlipTextModel, cross-attending) → mlp on [CLS] → normalized reward."""

    def __init__(self, vit: str, med_config: dict):
        super().__init__()
        from transformers.models.blip.modeling_blip_text import BlipTextModel

        self.vit_name = vit
        self.visual = build_vit(vit)
        self.text = BlipTextModel(text_config(med_config, VIT_CONFIGS[vit]["embed_dim"]), add_pooling_layer=False)
        self.mlp = reward_mlp(int(med_config["hidden_size"]))

    def image_embeds(self, pixel_values: Any) -> Any:
        return self.visual.forward_features(pixel_values)

    def rewards(self, image_embeds: Any, input_ids: Any, attention_mask: Any) -> Any:
        """(B,) normalized rewards for B (image, prompt) pairs."""
        # No encoder mask: every image token is attended, as the package's all-ones mask does.
        out = self.text(
            input_ids=input_ids,
            attention_mask=attention_mask,
            encoder_hidden_states=image_embeds,
            is_decoder=False,
        )
        cls = out.last_hidden_state[:, 0, :]
        raw = self.mlp(cls.to(self.mlp[0].weight.dtype)).float()
        return ((raw - REWARD_MEAN) / REWARD_STD).squeeze(-1)

    def forward(self, pixel_values: Any, input_ids: Any, attention_mask: Any) -> Any:
        return self.rewards(self.image_embeds(pixel_values), input_ids, attention_mask)


def _official_to_ours(key: str) -> str | None:
    if key.startswith(VISUAL_PREFIX):
        return "visual." + key[len(VISUAL_PREFIX) :]
    if key.startswith(TEXT_PREFIX):
        return "text." + key[len(TEXT_PREFIX) :]
    if key.startswith(MLP_PREFIX):
        return "mlp." + key[len(MLP_PREFIX) :]
    return None


def infer_vit(state: dict, source: str) -> str:
    """Which of BLIP's ViT sizes a checkpoint holds (the head count is not visible in shapes)."""
    try:
        pos = state[VISUAL_PREFIX + "pos_embed"]
        patch = state[VISUAL_PREFIX + "patch_embed.proj.weight"]
    except KeyError as e:
        raise WeightsError(f"{source}: not an ImageReward checkpoint (no {e.args[0]})") from None
    blocks = VISUAL_PREFIX + "blocks."
    depth = len({k[len(blocks) :].split(".")[0] for k in state if k.startswith(blocks)})
    for name, cfg in VIT_CONFIGS.items():
        tokens = (cfg["img_size"] // cfg["patch_size"]) ** 2 + 1
        if (pos.shape[-1], pos.shape[-2], patch.shape[-1], depth) == (
            cfg["embed_dim"],
            tokens,
            cfg["patch_size"],
            cfg["depth"],
        ):
            return name
    raise WeightsError(
        f"{source}: its ViT (width {pos.shape[-1]}, {depth} blocks, {pos.shape[-2]} tokens) is none of "
        f"BLIP's sizes {sorted(VIT_CONFIGS)}"
    )


def map_official_state_dict(state: dict, model: Any, source: str) -> dict:
    """Official `ImageReward.pt` keys → this model's keys; every key accounted for, every shape checked."""
    own = model.state_dict()
    mapped: dict = {}
    unexpected = []
    for key, value in state.items():
        if key in UNUSED_KEYS or key.startswith(UNUSED_PREFIXES):
            continue
        ours = _official_to_ours(key)
        if ours is None or ours not in own:
            unexpected.append(key)
            continue
        mapped[ours] = value
    missing = sorted(k for k in own if k not in mapped)
    wrong = sorted(
        f"{k} {tuple(mapped[k].shape)} vs {tuple(own[k].shape)}"
        for k in mapped
        if tuple(mapped[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", sorted(unexpected)), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {keys[0]})")
        raise WeightsError(f"{source}: does not match ImageReward's architecture: {', '.join(parts)}")
    return mapped


def to_official_state_dict(model: Any) -> dict:
    """This model's weights under the official `ImageReward.pt` key names (for tiny checkpoints)."""
    out = {}
    for key, value in model.state_dict().items():
        head, _, rest = key.partition(".")
        prefix = {"visual": VISUAL_PREFIX, "text": TEXT_PREFIX, "mlp": MLP_PREFIX}[head]
        out[prefix + rest] = value.detach().clone()
    n_pos = model.text.config.max_position_embeddings
    out[TEXT_PREFIX + "embeddings.position_ids"] = torch.arange(n_pos).expand((1, -1)).clone()
    # BLIP_Pretrain's contrastive projections (unused by the reward, present in the official file).
    width, text_width = model.visual.embed_dim, model.text.config.hidden_size
    out["blip.vision_proj.weight"] = torch.zeros(256, width)
    out["blip.vision_proj.bias"] = torch.zeros(256)
    out["blip.text_proj.weight"] = torch.zeros(256, text_width)
    out["blip.text_proj.bias"] = torch.zeros(256)
    return out


def build_from_official(state: dict, med_config: dict, source: str) -> ImageRewardNet:
    """An ImageRewardNet in eval mode holding the weights of an official-layout state dict."""
    vit = infer_vit(state, source)
    # Built on the meta device: every tensor comes from the checkpoint, so
    # random initialization (~15 s of CPU for ViT-L + BERT-base) is skipped.
    with torch.device("meta"):
        model = ImageRewardNet(vit, med_config)
    mapped = map_official_state_dict(state, model, source)
    model.load_state_dict(mapped, strict=True, assign=True)
    _materialize_buffers(model)
    return model.eval()


def _materialize_buffers(model: ImageRewardNet) -> None:
    """Rebuild the non-persistent buffers a meta build leaves empty (BlipText's position ids)."""
    for mod_name, module in model.named_modules():
        for name, buf in list(module._buffers.items()):
            if buf is None or not buf.is_meta:
                continue
            if name != "position_ids":
                raise WeightsError(f"cannot rebuild buffer {mod_name}.{name} of a meta-built model")
            module._buffers[name] = torch.arange(buf.shape[-1]).expand(tuple(buf.shape)).clone()
