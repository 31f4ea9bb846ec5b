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

``score_many`` does the same for many histories at once (an evaluation has
one short history per task): each distinct image runs through the vision
tower once (a :class:`FeatureCache` keeps the features across calls), the
prefixes of up to ``batch_size`` histories share one padded forward pass, and
the candidate turns of those histories share the next ones, each row reading
its own history's keys and values. The tests check that it gives the numbers
``condition`` + ``score_candidates`` give, history by history.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
    return TargetOutput(
        torch.cat([o.logits for o in outs]), torch.cat([o.plus for o in outs]), torch.cat([o.minus for o in outs])
    )


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
        for im, pr in zip(images[s : s + batch_size], prompts[s : s + batch_size]):
            from prefcli.vlm.template import EncodedSequence

            seqs.append(EncodedSequence(prefix, vlm.encoder.encode_suffix(prefix, im, pr)))
        outs.append(vlm.score_sequences(seqs, padding_side, pixel_cache))
    return TargetOutput(
        torch.cat([o.logits for o in outs]), torch.cat([o.plus for o in outs]), torch.cat([o.minus for o in outs])
    )


class FeatureCache:
    """Image id -> the image's features (vision tower + perceiver), least recently used dropped past `capacity_mb`.

    An image's features depend only on its bytes (the id is their sha256) and
    the model, so a run that meets an image in many histories and as many
    candidates encodes it once. Images without an id are encoded every time.
    One cache serves one model with fixed weights: a scorer owns its own (clear() it after changing weights).
    """

    def __init__(self, capacity_mb: int = 512) -> None:
        self.capacity = int(capacity_mb) << 20
        self._feats: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self.encoded = 0  # images run through the vision tower (tests and benches read it)

    def __len__(self) -> int:
        return len(self._feats)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._feats

    def clear(self) -> None:
        self._feats.clear()
        self._bytes = 0

    def features(self, vlm: PrefVLM, images: Sequence[Any], batch_size: int = 16) -> torch.Tensor:
        """(N, image_seq_len, D) features of `images`, in order; new ones encoded `batch_size` at a time."""
        keys: list[Any] = []
        todo: dict[Any, Any] = {}
        for i, im in enumerate(images):
            key = getattr(im, "image_id", None) or ("unkeyed", i)
            keys.append(key)
            if key not in self._feats and key not in todo:
                todo[key] = im
        fresh: dict[Any, torch.Tensor] = {}
        pending = list(todo.items())
        for s in range(0, len(pending), max(1, batch_size)):
            part = pending[s : s + max(1, batch_size)]
            feats = vlm.image_features(vlm.pixels([im for _, im in part]))
            for (key, _), f in zip(part, feats):
                fresh[key] = f.clone()  # not a view: a kept row must not hold its whole batch
        self.encoded += len(pending)
        out = [fresh[k] if k in fresh else self._feats[k] for k in keys]
        for k in keys:
            if k in self._feats:
                self._feats.move_to_end(k)
        for k, f in fresh.items():
            if isinstance(k, str):
                self._feats[k] = f
                self._bytes += f.numel() * f.element_size()
        while self._bytes > self.capacity and self._feats:
            _, f = self._feats.popitem(last=False)
            self._bytes -= f.numel() * f.element_size()
        if not out:
            d = int(vlm.core.config.text_config.hidden_size)
            return torch.zeros(0, vlm.image_seq_len, d, device=vlm.device)
        return torch.stack(out)


def _embed_with(
    vlm: PrefVLM, ids: torch.Tensor, images: Sequence[Any], features: FeatureCache, batch_size: int
) -> torch.Tensor:
    """Token embeddings with cached image features over the <image> positions (what ``PrefVLM.embed`` computes)."""
    emb = vlm.text_model.get_input_embeddings()(ids)
    is_img = ids == vlm.image_token_id
    n_tok = int(is_img.sum())
    if n_tok != len(images) * vlm.image_seq_len:
        raise ValueError(f"{n_tok} <image> tokens need {n_tok // vlm.image_seq_len} images, got {len(images)}")
    if n_tok == 0:
        return emb
    feats = features.features(vlm, images, batch_size).reshape(-1, emb.shape[-1])
    return vlm.scatter_images(emb, ids, feats)


def _prefix_pass(
    vlm: PrefVLM, prefixes: Sequence[Segment], features: FeatureCache, batch_size: int
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """[P_v; prefix] of several histories, right-padded, in one pass: every layer's keys/values and the mask."""
    ids, mask = pad_sequences([p.ids for p in prefixes], vlm.encoder.pad_id, "right")
    ids, mask = ids.to(vlm.device), mask.to(vlm.device)
    embeds = _embed_with(vlm, ids, [im for p in prefixes for im in p.images], features, batch_size)
    embeds, mask = vlm.with_pref_tokens(embeds, mask, "right")
    out = vlm.run_text(embeds, mask, use_cache=True)
    return [(layer.keys, layer.values) for layer in out.cache.layers], mask


def _suffix_pass(
    vlm: PrefVLM,
    kv: list[tuple[torch.Tensor, torch.Tensor]],
    prefix_mask: torch.Tensor,
    rows: torch.Tensor,
    segs: Sequence[Segment],
    features: FeatureCache,
    batch_size: int,
) -> TargetOutput:
    """Candidate turns on top of their histories' caches; `rows[i]` is the prefix row candidate i follows."""
    from transformers import DynamicCache

    ids, mask = pad_sequences([g.ids for g in segs], vlm.encoder.pad_id, "right")
    ids, mask = ids.to(vlm.device), mask.to(vlm.device)
    embeds = _embed_with(vlm, ids, [im for g in segs for im in g.images], features, batch_size)
    pm = prefix_mask[rows]
    # The prefix's pads stay masked; positions continue from each row's own prefix length.
    full_mask = torch.cat([pm, mask], dim=1)
    pos = (mask.cumsum(-1) - 1).clamp(min=0) + pm.sum(dim=1, keepdim=True)
    cache = DynamicCache(ddp_cache_data=[(k[rows], v[rows]) for k, v in kv], config=vlm.core.config.text_config)
    out = vlm.run_text(embeds, full_mask, position_ids=pos, cache=cache, use_cache=True)
    idx = last_real_index(mask)
    hidden = out.last_hidden_state[torch.arange(len(segs), device=mask.device), idx]
    return vlm.head(hidden)


def _empty_output(vlm: PrefVLM) -> TargetOutput:
    z = torch.zeros(0, device=vlm.device)
    return TargetOutput(torch.zeros(0, len(vlm.tokenizer), device=vlm.device), z, z)


def score_many(
    vlm: PrefVLM,
    jobs: Sequence[tuple[Any, Sequence[Any], Sequence[str | None] | str | None]],
    *,
    batch_size: int = 16,
    features: FeatureCache | None = None,
) -> list[TargetOutput]:
    """``condition(history)`` + ``score_candidates`` for each job (history, candidate images, prompts), batched across jobs.

    Up to `batch_size` histories per prefix pass and `batch_size` candidate
    rows per candidate pass (the memory bound ``batch_size`` always meant).
    `features` keeps image features between calls (a fresh cache if None).
    """
    features = features if features is not None else FeatureCache()
    bs = max(1, int(batch_size))
    prepared: list[tuple[Segment, list[Segment]]] = []
    for history, images, prompts in jobs:
        images = list(images)
        if isinstance(prompts, str) or prompts is None:
            prompts = [prompts] * len(images)
        prefix = vlm.encoder.encode_prefix(_items(history))
        prepared.append((prefix, [vlm.encoder.encode_suffix(prefix, im, pr) for im, pr in zip(images, prompts)]))
    results: list[TargetOutput] = [_empty_output(vlm)] * len(prepared)
    live = [j for j, (_, sufs) in enumerate(prepared) if sufs]
    for c in range(0, len(live), bs):
        chunk = live[c : c + bs]
        kv, pmask = _prefix_pass(vlm, [prepared[j][0] for j in chunk], features, bs)
        rows = [(r, k) for r, j in enumerate(chunk) for k in range(len(prepared[j][1]))]
        outs = []
        for s in range(0, len(rows), bs):
            part = rows[s : s + bs]
            which = torch.tensor([r for r, _ in part], dtype=torch.long, device=pmask.device)
            outs.append(_suffix_pass(vlm, kv, pmask, which, [prepared[chunk[r]][1][k] for r, k in part], features, bs))
        logits = torch.cat([o.logits for o in outs])
        plus, minus = torch.cat([o.plus for o in outs]), torch.cat([o.minus for o in outs])
        at = 0
        for j in chunk:
            n = len(prepared[j][1])
            results[j] = TargetOutput(logits[at : at + n], plus[at : at + n], minus[at : at + n])
            at += n
    return results


def q_scores(out: TargetOutput) -> list[float]:
    """Q(S, z) = softmax(M+, M-)[+] as plain floats."""
    return [float(x) for x in out.q.detach().cpu()]
