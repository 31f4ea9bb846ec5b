"""HPSv3's network on today's transformers: a Qwen2-VL and a reward head read at `<|Reward|>`.

What upstream runs (hpsv3 1.0.0, `hpsv3/model/qwen2vl_trainer.py`,
`Qwen2VLRewardModelBT`, under the transformers 4.45.2 its wheel pins):

- the image embeddings of the vision tower replace the `<|image_pad|>` token
  embeddings (lines 148-161);
- the text model runs with `position_ids=None` (line 181): transformers 4.45.2's
  Qwen2VLModel then gives every token the same 1-D position on all three
  M-RoPE axes (modeling_qwen2_vl.py lines 1204-1205), not the image-grid
  positions generation would use. `forward` passes those positions explicitly;
- `rm_head` (lines 99-106: Linear(hidden, 1024), ReLU, Dropout(0.05),
  Linear(1024, 16), ReLU, Linear(16, 2)) runs in float32 on the last hidden
  state (lines 108 and 192-193; train.py line 90 keeps it float32 when the rest
  is bf16), and the output is read where the input is the `<|Reward|>` token
  (lines 229-241): (μ, σ), the score being μ (inference.py line 166).

HPSv3.safetensors holds the whole reward model in 4.45's names; today's
Qwen2VLModel calls the text model `language_model`, and the vision tower and
text model are loaded here without the unused `lm_head` (checked present,
then dropped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from prefcli.errors import WeightsError, one_line

HEAD_WIDTHS = (1024, 16, 2)


def reward_head(hidden: int) -> nn.Sequential:
    """The "ranknet" head of HPSv3_7B.yaml (rm_head_type: ranknet, no rm_head_kwargs), in float32."""
    return nn.Sequential(
        nn.Linear(hidden, HEAD_WIDTHS[0]), nn.ReLU(), nn.Dropout(0.05),
        nn.Linear(HEAD_WIDTHS[0], HEAD_WIDTHS[1]), nn.ReLU(), nn.Linear(HEAD_WIDTHS[1], HEAD_WIDTHS[2]),
    ).float()  # fmt: skip


def to_official_keys(state: dict[str, Any]) -> dict[str, Any]:
    """Today's Qwen2VLModel keys → the 4.45 Qwen2VLForConditionalGeneration names of HPSv3.safetensors."""
    out = {}
    for k, v in state.items():
        if k.startswith("language_model."):
            out["model." + k[len("language_model.") :]] = v
        elif k.startswith("visual."):
            out[k] = v
        else:
            raise KeyError(f"unexpected Qwen2VLModel key {k}")
    return out


def from_official_keys(state: dict[str, Any], source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(backbone state in today's names, rm_head state) from HPSv3.safetensors' keys; anything else is an error."""
    core, head, other = {}, {}, []
    for k, v in state.items():
        if k.startswith("model."):
            core["language_model." + k[len("model.") :]] = v
        elif k.startswith("visual."):
            core[k] = v
        elif k.startswith("rm_head."):
            head[k[len("rm_head.") :]] = v
        elif k != "lm_head.weight":
            other.append(k)
    if other:
        raise WeightsError(
            f"{source}: not an HPSv3 checkpoint: {len(other)} unexpected key(s) (e.g. {sorted(other)[0]})"
        )
    if "lm_head.weight" not in state or not head:
        what = "rm_head.*" if not head else "lm_head.weight"
        raise WeightsError(
            f"{source}: not an HPSv3 checkpoint: no {what} (the reward model's full state dict is expected)"
        )
    return core, head


class HPSv3Net(nn.Module):
    """Qwen2-VL backbone + float32 reward head; `forward` returns (B, 2): μ and σ at `<|Reward|>`."""

    def __init__(self, core: nn.Module, head: nn.Module, reward_token_id: int):
        super().__init__()
        self.core, self.head = core, head
        self.reward_token_id = int(reward_token_id)

    def embed(self, input_ids: torch.Tensor, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor) -> torch.Tensor:
        core = self.core
        embeds = core.get_input_embeddings()(input_ids)
        image = core.get_image_features(pixel_values, image_grid_thw).pooler_output
        image = torch.cat(list(image), 0) if isinstance(image, (list, tuple)) else image
        mask = (input_ids == core.config.image_token_id).unsqueeze(-1).expand_as(embeds)
        if int(mask[..., 0].sum()) != image.shape[0]:
            raise ValueError(
                f"{int(mask[..., 0].sum())} image tokens in the text but {image.shape[0]} image embeddings"
            )
        return embeds.masked_scatter(mask, image.to(embeds.device, embeds.dtype))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor,
        image_grid_thw: torch.Tensor,
    ) -> torch.Tensor:
        embeds = self.embed(input_ids, pixel_values, image_grid_thw)
        b, n = input_ids.shape
        # 1-D positions on all three M-RoPE axes, as upstream's position_ids=None gives under transformers 4.45.2.
        positions = torch.arange(n, device=embeds.device).view(1, 1, -1).expand(3, b, -1)
        hidden = self.core.language_model(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=positions,
                                          use_cache=False).last_hidden_state  # fmt: skip
        at = input_ids == self.reward_token_id
        if not bool((at.sum(-1) == 1).all()):
            raise ValueError(f"each sequence must hold exactly one reward token; found {at.sum(-1).tolist()}")
        return self.head(hidden[at].float())


def build(
    base_dir: Path,
    checkpoint: Path,
    n_tokens: int,
    reward_token_id: int,
    device: Any,
    dtype: Any,
    load_in_4bit: bool = False,
) -> HPSv3Net:
    """The network from the base folder's config.json and the checkpoint file, loaded strictly.

    `load_in_4bit`: the text model's linear layers become bitsandbytes nf4 (compute in `dtype`, bf16 when
    that is float32); the vision tower, embeddings and the reward head keep `dtype` / float32.
    """
    from transformers import AutoConfig, Qwen2VLModel

    from prefcli import weights as W

    try:
        config = AutoConfig.from_pretrained(str(base_dir))
    except Exception as e:  # noqa: BLE001 - transformers raises its own types; never a traceback
        raise WeightsError(
            f"{base_dir}: cannot read the Qwen2-VL config ({type(e).__name__}: {one_line(e, 200)})"
        ) from None
    if getattr(config, "model_type", None) != "qwen2_vl":
        raise WeightsError(
            f"{base_dir}: HPSv3 is built on Qwen2-VL; this config's model_type is {getattr(config, 'model_type', None)!r}"
        )
    core_state, head_state = from_official_keys(W.load_state_dict(checkpoint), str(checkpoint))
    rows = core_state.get("language_model.embed_tokens.weight")
    if rows is None or rows.shape[0] != n_tokens:
        found = None if rows is None else rows.shape[0]
        raise WeightsError(
            f"{checkpoint}: the embedding table has {found} rows but the tokenizer plus {'<|Reward|>'} has {n_tokens}; "
            "the checkpoint and the base model's tokenizer do not belong together"
        )
    config.text_config.vocab_size = n_tokens
    config.vocab_size = n_tokens
    from transformers.initialization import no_init_weights

    # Built in place without initialization (every tensor comes from the checkpoint): a random 7B costs minutes.
    compute = torch.bfloat16 if load_in_4bit and dtype == torch.float32 else dtype
    # Quantized layers are filled on the CPU and packed when moved to the GPU.
    with no_init_weights(), torch.device("cpu" if load_in_4bit else device):
        core = Qwen2VLModel._from_config(config, dtype=compute, attn_implementation="sdpa")
    _load_strict(core, core_state, str(checkpoint))
    if load_in_4bit:
        quantize_text_model(core, compute)
        core.to(device)
    head = reward_head(int(config.text_config.hidden_size))
    _load_strict(head, head_state, str(checkpoint), prefix="rm_head.")
    return HPSv3Net(core.eval(), head.to(device).eval(), reward_token_id)


def _load_strict(module: nn.Module, state: dict[str, Any], source: str, prefix: str = "") -> None:
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = [f"{len(keys)} {label} (e.g. {prefix}{keys[0]})" for label, keys in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]  # fmt: skip
        raise WeightsError(f"{source}: not an HPSv3 checkpoint for this base model: {', '.join(parts)}")
    module.load_state_dict(state, strict=True)


def quantize_text_model(core: nn.Module, compute_dtype: Any) -> None:
    """Swap the text model's nn.Linear layers for bitsandbytes 4-bit nf4 ones holding the same weights."""
    try:
        import bitsandbytes as bnb
    except ImportError:
        raise WeightsError(
            "hpsv3: load_in_4bit needs bitsandbytes (pip install bitsandbytes, or prefcli[qlora])"
        ) from None
    from prefcli import messages

    messages.allow_bitsandbytes()  # quantizing: what bitsandbytes says now concerns this run
    for parent in list(core.language_model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not nn.Linear:
                continue
            q = bnb.nn.Linear4bit(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                compute_dtype=compute_dtype,
                quant_type="nf4",
            )
            q.weight = bnb.nn.Params4bit(child.weight.data.to(compute_dtype), requires_grad=False, quant_type="nf4")
            if child.bias is not None:
                q.bias = nn.Parameter(child.bias.data.to(compute_dtype), requires_grad=False)
            setattr(parent, name, q)
