"""Q(S, z) for many candidates of one history, with the shared prefix computed once.

``condition`` runs [P_v; <s>; history turns] through the language model once
and keeps every layer's keys and values. ``score_candidates`` then runs only
each candidate's own turn on top of that cache: the cache is expanded across
the candidate batch, candidate turns are right-padded, their attention mask
is [ones over the prefix, their own mask] and their positions continue from
the prefix length. The result equals the uncached full-sequence computation
(``score_uncached``), which the tests check to 1e-4 relative in fp32.

Scores are differentiable with respect to candidate pixels when the caller
passes ``pixel_values`` that require grad (and does not disable grad).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from prefcli.vlm.model import PrefVLM, TargetOutput, last_real_index, pad_sequences
from prefcli.vlm.template import HistoryItem, Segment, eval_history_items


@dataclass
class PrefixState:
    """The encoded, cached history of one user."""

    keys_values: list[tuple[torch.Tensor, torch.Tensor]]  # per layer, (1, kv_heads, P, head_dim)
    length: int  # cached positions: preference tokens + prefix ids
    prefix: Segment  # the prefix's ids and text, to tokenize candidate turns against
    n_items: int


def _items(history: Any) -> list[HistoryItem]:
    if history is None:
        return []
    if isinstance(history, (list, tuple)) and (not history or isinstance(history[0], HistoryItem)):
        return list(history)
    return eval_history_items(history)


def condition(vlm: PrefVLM, history: Any, pixel_cache: dict | None = None) -> PrefixState:
    """Encode [P_v; history] once; `history` is a UserHistory (evaluation order) or HistoryItems."""
    items = _items(history)
    seg = vlm.encoder.encode_prefix(items)
    ids = torch.tensor([seg.ids], dtype=torch.long, device=vlm.device)
    pv = vlm.pixels(seg.images, pixel_cache) if seg.images else None
    embeds = vlm.embed(ids, pv)
    mask = torch.ones_like(ids)
    embeds, mask = vlm.with_pref_tokens(embeds, mask)
    out = vlm.run_text(embeds, mask, use_cache=True)
    kv = [(layer.keys, layer.values) for layer in out.cache.layers]
    return PrefixState(kv, int(mask.shape[1]), seg, len(items))


def _expanded_cache(vlm: PrefVLM, state: PrefixState, n: int) -> Any:
    from transformers import DynamicCache

    data = [(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in state.keys_values]
    return DynamicCache(ddp_cache_data=data, config=vlm.core.config.text_config)


def score_candidates(
    vlm: PrefVLM,
    state: PrefixState,
    images: Sequence[Any],
    prompts: Sequence[str | None] | str | None = None,
    *,
    batch_size: int = 16,
    pixel_values: torch.Tensor | None = None,
    pixel_cache: dict | None = None,
) -> TargetOutput:
    """M+, M- (and full logits) for each candidate image after the cached history, in order."""
    n = len(images) if pixel_values is None else int(pixel_values.shape[0])
    if isinstance(prompts, str) or prompts is None:
        prompts = [prompts] * n
    outs: list[TargetOutput] = []
    for s in range(0, n, batch_size):
        e = min(n, s + batch_size)
        imgs = list(images[s:e]) if images is not None and len(images) else [None] * (e - s)
        segs = [vlm.encoder.encode_suffix(state.prefix, im, pr) for im, pr in zip(imgs, prompts[s:e])]
        ids, mask = pad_sequences([g.ids for g in segs], vlm.encoder.pad_id, "right")
        ids, mask = ids.to(vlm.device), mask.to(vlm.device)
        pv = pixel_values[s:e] if pixel_values is not None else vlm.pixels(imgs, pixel_cache)
        embeds = vlm.embed(ids, pv)
        b = e - s
        full_mask = torch.cat([torch.ones((b, state.length), dtype=mask.dtype, device=mask.device), mask], dim=1)
        pos = (mask.cumsum(-1) - 1).clamp(min=0) + state.length
        out = vlm.run_text(embeds, full_mask, position_ids=pos, cache=_expanded_cache(vlm, state, b), use_cache=True)
        idx = last_real_index(mask)
        hidden = out.last_hidden_state[torch.arange(b, device=mask.device), idx]
        outs.append(vlm.head(hidden))
    if not outs:
        z = torch.zeros(0, device=vlm.device)
        return TargetOutput(torch.zeros(0, len(vlm.tokenizer), device=vlm.device), z, z)
    return TargetOutput(torch.cat([o.logits for o in outs]), torch.cat([o.plus for o in outs]),
                        torch.cat([o.minus for o in outs]))


def score_uncached(
    vlm: PrefVLM,
    history: Any,
    images: Sequence[Any],
    prompts: Sequence[str | None] | str | None = None,
    *,
    batch_size: int = 16,
    padding_side: str = "right",
    pixel_cache: dict | None = None,
) -> TargetOutput:
    """The reference: the full sequence (history + candidate turn) for every candidate."""
    items = _items(history)
    n = len(images)
    if isinstance(prompts, str) or prompts is None:
        prompts = [prompts] * n
    prefix = vlm.encoder.encode_prefix(items)
    outs = []
    for s in range(0, n, batch_size):
        seqs = []
        for im, pr in zip(images[s:s + batch_size], prompts[s:s + batch_size]):
            from prefcli.vlm.template import EncodedSequence

            seqs.append(EncodedSequence(prefix, vlm.encoder.encode_suffix(prefix, im, pr)))
        outs.append(vlm.score_sequences(seqs, padding_side, pixel_cache))
    return TargetOutput(torch.cat([o.logits for o in outs]), torch.cat([o.plus for o in outs]),
                        torch.cat([o.minus for o in outs]))


def q_scores(out: TargetOutput) -> list[float]:
    """Q(S, z) = softmax(M+, M-)[+] as plain floats."""
    return [float(x) for x in out.q.detach().cpu()]
