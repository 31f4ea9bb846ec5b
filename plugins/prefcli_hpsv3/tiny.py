"""A tiny random HPSv3 written offline in the official checkpoint format (tests, `--weights tiny`).

The official weights are two things: the base model's files (config.json,
tokenizer and image processor of `Qwen/Qwen2-VL-7B-Instruct`, which upstream
loads with `AutoProcessor.from_pretrained`) and `HPSv3.safetensors`, the whole
state dict of upstream's `Qwen2VLRewardModelBT` (transformers 4.45 key names:
`model.*` text model, `visual.*` vision tower, `lm_head.weight`, and
`rm_head.{0,3,5}.*`) after `<|Reward|>` was added to the tokenizer and the
embeddings resized to it. `save_tiny` writes both into one folder:

- the base files in the 4.45-era hub layout (a flat Qwen2-VL config.json with
  `rope_scaling: mrope`, vocab.json + merges.txt, tokenizer_config.json,
  preprocessor_config.json, chat_template.json), so transformers 4.45.2 (the
  version upstream pins) and today's transformers both read them;
- a Qwen2-VL of transformers' test size (hidden 32, 2 layers), patch 14 and
  merge 2 as the real model, so real image sizes go through the real tower;
- the reward head of upstream's default "ranknet" head, whose inner sizes are
  hard-coded (hidden → 1024 → 16 → 2): only its input width shrinks.

The tokenizer is a byte-level BPE trained on the spot on HPSv3's prompt text
(so the long instruction stays short in tokens) with Qwen2-VL's special
tokens after it, in their published order. Everything is seeded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from prefcli_hpsv3 import prompt as P

VOCAB_SIZE = 600
HIDDEN = 32
HEAD_HIDDEN = (1024, 16)  # upstream's ranknet head without rm_head_kwargs (qwen2vl_trainer.py lines 99-106)
# Qwen2-VL-7B-Instruct's config.json pads the embedding table past the tokenizer (152064 rows for 151657
# tokens); upstream's resize_token_embeddings cuts it to the tokenizer + <|Reward|>. The tiny one pads too.
VOCAB_PAD = 64


def _special_tokens() -> tuple[str, ...]:
    from prefcli.qwen2vl import SPECIAL_TOKENS

    return ("<|endoftext|>", *SPECIAL_TOKENS)


def _training_text() -> list[str]:
    from prefcli.qwen2vl import CHAT_TEMPLATE

    return [
        P.INSTRUCTION,
        P.REWARD_SUFFIX,
        P.PLAIN_SUFFIX,
        CHAT_TEMPLATE,
        "system user assistant You are a helpful assistant.",
    ]


def write_tokenizer(directory: Path) -> dict[str, int]:
    """vocab.json, merges.txt and tokenizer_config.json (Qwen2Tokenizer); returns the special tokens' ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from prefcli import atomic

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(_training_text(), trainer)
    bpe.model.save(str(directory))
    n = bpe.get_vocab_size()
    ids = {t: n + i for i, t in enumerate(_special_tokens())}
    added = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
             for t, i in ids.items()}  # fmt: skip
    config = {
        "add_prefix_space": False, "added_tokens_decoder": added,
        "additional_special_tokens": list(_special_tokens()[1:]),
        "bos_token": None, "clean_up_tokenization_spaces": False, "eos_token": "<|im_end|>", "errors": "replace",
        "model_max_length": 32768, "pad_token": "<|endoftext|>", "padding_side": "left", "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
    }  # fmt: skip
    atomic.write_text(directory / "tokenizer_config.json", json.dumps(config, indent=2))
    return ids


def base_config(ids: dict[str, int]) -> dict[str, Any]:
    """Qwen2-VL-7B-Instruct's config.json, shrunk (same keys, same 4.45-era flat layout)."""
    n_tokens = max(ids.values()) + 1
    return {
        "architectures": ["Qwen2VLForConditionalGeneration"], "attention_dropout": 0.0,
        "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
        "vision_start_token_id": ids["<|vision_start|>"], "vision_end_token_id": ids["<|vision_end|>"],
        "vision_token_id": ids["<|vision_pad|>"], "image_token_id": ids["<|image_pad|>"], "video_token_id": ids["<|video_pad|>"],
        "hidden_act": "silu", "hidden_size": HIDDEN, "initializer_range": 0.02, "intermediate_size": 64,
        "max_position_embeddings": 32768, "max_window_layers": 2, "model_type": "qwen2_vl",
        "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": False, "torch_dtype": "float32",
        "use_cache": True, "use_sliding_window": False,
        "vision_config": {"depth": 2, "embed_dim": 32, "mlp_ratio": 2, "num_heads": 4, "in_chans": 3, "hidden_size": HIDDEN,
                          "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},
        # head_dim 8: the sections add up to head_dim / 2, as [16, 24, 24] does for the 7B's 128
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 1, 1]},
        "vocab_size": n_tokens + VOCAB_PAD,
    }  # fmt: skip


# Qwen2-VL-7B-Instruct's preprocessor_config.json.
PREPROCESSOR = {
    "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor",
}  # fmt: skip


def tiny_state_dict(config: dict[str, Any], n_tokens: int, seed: int = 0) -> dict[str, Any]:
    """Seeded weights of upstream's Qwen2VLRewardModelBT in HPSv3.safetensors' key layout (transformers 4.45 names)."""
    import torch
    from torch import nn
    from transformers import AutoConfig, Qwen2VLModel

    from prefcli_hpsv3 import model as M

    cfg = AutoConfig.for_model(**config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        core = Qwen2VLModel(cfg).eval()
        core.resize_token_embeddings(n_tokens)
        lm_head = nn.Linear(HIDDEN, n_tokens, bias=False)
        head = M.reward_head(HIDDEN)
    state = M.to_official_keys(core.state_dict())
    state["lm_head.weight"] = lm_head.weight.detach()
    state.update({f"rm_head.{k}": v.detach() for k, v in head.state_dict().items()})
    return {k: v.contiguous() for k, v in state.items()}


def save_tiny(directory: str | os.PathLike, seed: int = 0) -> Path:
    """Write the base files and HPSv3.safetensors into `directory` (what `--weights FOLDER` loads)."""
    from prefcli import atomic
    from prefcli import weights as W
    from prefcli.qwen2vl import CHAT_TEMPLATE

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ids = write_tokenizer(d)
    config = base_config(ids)
    atomic.write_text(d / "config.json", json.dumps(config, indent=2))
    atomic.write_text(d / "preprocessor_config.json", json.dumps(PREPROCESSOR, indent=2))
    atomic.write_text(d / "chat_template.json", json.dumps({"chat_template": CHAT_TEMPLATE}, indent=2))
    n_tokens = max(ids.values()) + 2  # the tokenizer, then <|Reward|>
    W.save_state_dict(tiny_state_dict(config, n_tokens, seed), d / P.CHECKPOINT)
    return d
