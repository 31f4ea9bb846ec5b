"""A tiny random Qwen2.5-VL and its processor, built offline (tests, `--weights tiny`).

No Qwen tokenizer can be downloaded here, so the tokenizer is a byte-level BPE
trained on the spot with `tokenizers` on PreferThinker's own prompt texts
(so the long system prompt stays short in tokens) and saved in the official
Qwen2 format (vocab.json + merges.txt read by `Qwen2Tokenizer`), with
Qwen2-VL's special tokens added in their published order. The chat template
is Qwen2-VL / Qwen2.5-VL Instruct's published `chat_template.json` (with
`add_vision_id` support). The model is a `Qwen2_5_VLForConditionalGeneration`
from a config of transformers' test size (hidden 32, 2 layers, 4 heads),
patch 14 and merge 2 as the real model, so images go through the real
processor and vision tower. Everything is seeded: the same seed gives the same
weights and the same tokenizer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefcli.qwen2vl import CHAT_TEMPLATE, SPECIAL_TOKENS  # noqa: F401 - tiny_processor uses both; hpsv3 imports them from prefcli.qwen2vl

VOCAB_SIZE = 800


def _training_text() -> list[str]:
    from prefcli_vlmjudge import protocol as P

    return [P.SYSTEM_PROMPT, P.PREFERRED_INTRO, P.NON_PREFERRED_INTRO, P.CANDIDATES_INTRO, P.FINAL_INSTRUCTION,
            "Picture 1: Preferred Image 1. Non-Preferred Image 1. Image A Image B system user assistant"]  # fmt: skip


def tiny_tokenizer(directory: str | os.PathLike) -> Any:
    """Train the BPE, write vocab.json + merges.txt into `directory`, and load it as Qwen2Tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(_training_text(), trainer)
    bpe.model.save(str(d))
    tok = Qwen2Tokenizer(vocab=str(d / "vocab.json"), merges=str(d / "merges.txt"), errors="replace")
    tok.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS)})
    return tok


def tiny_processor(directory: str | os.PathLike) -> Any:
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    tok = tiny_tokenizer(directory)
    # The real processor's size rule and patching (patch 14, merge 2, temporal 2), smaller bounds.
    images = Qwen2VLImageProcessor(
        min_pixels=56 * 56, max_pixels=28 * 28 * 64, patch_size=14, merge_size=2, temporal_patch_size=2
    )
    return Qwen2_5_VLProcessor(
        image_processor=images, tokenizer=tok, video_processor=Qwen2VLVideoProcessor(), chat_template=CHAT_TEMPLATE
    )


def tiny_model(tokenizer: Any, seed: int = 0) -> Any:
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {
        t: tokenizer.convert_tokens_to_ids(t)
        for t in ("<|endoftext|>", "<|im_end|>", "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    }
    cfg = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=16384,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]},
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2, out_hidden_size=32, window_size=56, fullatt_block_indexes=[1]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )  # fmt: skip
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    return model


def save_tiny(directory: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny checkpoint folder in the official layout (what `--weights FOLDER` loads)."""
    d = Path(directory)
    proc = tiny_processor(d)
    model = tiny_model(proc.tokenizer, seed)
    proc.save_pretrained(str(d))
    model.save_pretrained(str(d))
    return d
