"""A tiny ImageReward for tests and offline demos: tiny ViT, tiny BERT, tiny WordPiece vocabulary.

Everything is built offline and seeded. The tiny model keeps every structural
fact of the real one (224 px input, patch 16, [CLS] + cross-attention, the
1024→128→64→16→1 head, the reward normalization); only widths, depths and the
vocabulary shrink. `save_tiny_checkpoint` writes the three files of a real
ImageReward folder (`ImageReward.pt` in the official key layout,
`med_config.json`, `vocab.txt`), so tests load them back through the real path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefcli import atomic

# Special tokens first, as in BERT; then enough characters and "##" pieces that
# any lower-case ASCII prompt tokenizes without [UNK]; then a few whole words.
_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,!?'\"-:;()&/")
_WORDS = (
    "a an the of and in on with at to is by for from as this that it "
    "cat dog bird horse fish car house tree flower forest sky sea lake river mountain city street "
    "portrait painting photo picture drawing sketch render art style oil watercolor digital "
    "red green blue yellow black white orange purple pink gold silver dark light bright "
    "man woman girl boy person people face eyes hair sun moon star night day sunset "
    "beautiful cute old young big small tall detailed realistic fantasy magic castle robot space"
).split()


def tiny_vocab() -> list[str]:
    words = [w for w in dict.fromkeys(_WORDS) if w not in _CHARS]
    return _SPECIAL + _CHARS + words + ["##" + c for c in _CHARS if c.isalnum()]


def tiny_med_config() -> dict:
    """med_config.json of the tiny text encoder; vocab = the tiny WordPiece + [DEC] + [ENC]."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
        "vocab_size": len(tiny_vocab()) + 2,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "pad_token_id": 0,
        "type_vocab_size": 2,
        "encoder_width": 32,
        "add_cross_attention": True,
    }


def randomize_(model: Any, seed: int) -> Any:
    """Seeded weights of O(1) signal (fan-in scaled), so scores vary across images and prompts.

    Default initializations (std 0.02, a head scaled by 1/769) give near-constant
    rewards, which would make parity checks on scores weak.
    """
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)
            elif "norm" in name.lower() or "LayerNorm" in name:
                p.copy_(
                    1.0 + 0.1 * torch.randn(p.shape, generator=gen)
                    if name.endswith("weight")
                    else 0.1 * torch.randn(p.shape, generator=gen)
                )
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return model


def tiny_state_dict(seed: int = 0) -> dict:
    """Seeded tiny weights in the official `ImageReward.pt` key layout."""
    import torch

    from prefcli_imagereward.model import ImageRewardNet, to_official_state_dict

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = ImageRewardNet("tiny", tiny_med_config())
    randomize_(net, seed)
    return to_official_state_dict(net)


def write_vocab(directory: str | Path) -> Path:
    """vocab.txt and tokenizer_config.json of the tiny uncased WordPiece tokenizer."""
    d = Path(directory)
    atomic.write_text(d / "vocab.txt", "\n".join(tiny_vocab()) + "\n")
    atomic.write_text(d / "tokenizer_config.json", json.dumps({"do_lower_case": True, "model_max_length": 512}))
    return d


def save_tiny_checkpoint(directory: str | Path, seed: int = 0) -> Path:
    """Write a tiny ImageReward folder: ImageReward.pt (official layout), med_config.json, vocab.txt."""
    import torch

    d = write_vocab(directory)
    with atomic.atomic_path(d / "ImageReward.pt") as tmp:
        torch.save(tiny_state_dict(seed), tmp)
    atomic.write_text(d / "med_config.json", json.dumps(tiny_med_config(), indent=2))
    return d
