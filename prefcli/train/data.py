"""Training and validation batches from a prefcli dataset.

A training *sample* is one target pair (z_pos, z_neg) of a user and a
history of N_ref of that user's OTHER pairs:

- the history never contains either target image (a pair that shares an
  image with the target is not eligible);
- its order is shuffled per sample, both the pair order and the order inside
  each pair (``train_history_items``), so position never gives the label away;
- history labels are inputs only: the loss reads M+ / M- at the two target
  positions and nowhere else;
- a history-free stage (the population model, or a warm-up) gives the target
  alone.

Samples are drawn with replacement by a generator seeded from
(seed, process, step, micro-step): the data position of a run is just its
step counter, so a resumed run draws exactly the batches an uninterrupted run
would, with no sampler state to save.

Images are referred to by their dataset image id inside the template
encoder; ``PixelStore`` turns ids into preprocessed pixel tensors (cached,
bounded by bytes), and each batch's images are de-duplicated, so the vision
tower sees every distinct image of a batch once.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from prefcli.vlm.template import HistoryItem, eval_history_items, train_history_items


class HPair(NamedTuple):
    """A history pair as the template helpers read it (images are dataset image ids)."""

    liked: str
    disliked: str
    prompt: str | None


@dataclass
class Sample:
    items: list  # HistoryItems (image = image id), in sequence order
    liked: str
    disliked: str
    prompt: str | None
    user_id: str
    # Another training user's history for the same targets (the toy history-sensitivity
    # term, ``loss_swap``); None when the stage does not use it.
    swap_items: list | None = None


@dataclass
class PairBatch:
    """2B right-padded sequences (B liked targets, then B disliked) and their de-duplicated images."""

    input_ids: torch.Tensor  # (2B, T)
    attention_mask: torch.Tensor  # (2B, T)
    pixel_values: torch.Tensor  # (U, 3, S, S): each distinct image once
    image_index: torch.Tensor  # (N,): for each image slot in row-major order, its row in pixel_values
    n_pairs: int
    image_ids: tuple = ()  # (U,): the id of each row of pixel_values (prefcli.train.frozen_features)

    def to(self, device: Any) -> PairBatch:
        return PairBatch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.pixel_values.to(device),
            self.image_index.to(device),
            self.n_pairs,
            self.image_ids,
        )


class PixelStore:
    """Image id -> preprocessed pixel tensor, least recently used dropped past `capacity_mb`."""

    def __init__(self, dataset: Any, preprocess: Any, capacity_mb: int = 2048) -> None:
        self.dataset = dataset
        self.preprocess = preprocess
        self.capacity = int(capacity_mb) * (1 << 20)
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._bytes = 0

    def get(self, image_ids: Sequence[str]) -> torch.Tensor:
        missing = [i for i in dict.fromkeys(image_ids) if i not in self._cache]
        if missing:
            fresh = self.preprocess([self.dataset.open_image(i) for i in missing])
            for i, t in zip(missing, fresh):
                t = t.contiguous()
                self._cache[i] = t
                self._bytes += t.numel() * t.element_size()
        out = []
        for i in image_ids:
            self._cache.move_to_end(i)
            out.append(self._cache[i])
        while self._bytes > self.capacity and len(self._cache) > len(set(image_ids)):
            _, t = self._cache.popitem(last=False)
            self._bytes -= t.numel() * t.element_size()
        if not out:
            s = getattr(self.preprocess, "image_size", 1)
            return torch.zeros(0, 3, s, s)
        return torch.stack(out)


class TrainSampler:
    """Draws training samples from one split's pairs, grouped by user."""

    def __init__(
        self,
        pairs_by_user: dict[str, list],
        n_ref: int,
        *,
        seed: int = 0,
        shuffle_history: bool = True,
        min_history: int | None = None,
    ) -> None:
        self.n_ref = int(n_ref)
        self.seed = int(seed)
        self.shuffle_history = shuffle_history
        need = self.n_ref if min_history is None else int(min_history)
        # A user needs a target pair plus `need` other pairs; smaller users cannot give a full history.
        self.users = {u: list(ps) for u, ps in sorted(pairs_by_user.items()) if len(ps) >= need + 1}
        self.flat = [(u, i) for u, ps in self.users.items() for i in range(len(ps))]
        if not self.flat:
            raise ValueError(f"no user has {need + 1} or more training pairs")

    def __len__(self) -> int:
        return len(self.flat)

    def rng(self, step: int, micro: int, process: int) -> random.Random:
        return random.Random(f"prefcli-train|{self.seed}|{process}|{step}|{micro}")

    def _history(self, rng: random.Random, user: str, banned: set, skip: int = -1) -> list[HistoryItem]:
        """N_ref of `user`'s pairs (never pair `skip`, never an image in `banned`), in training order."""
        pool = [
            p
            for j, p in enumerate(self.users[user])
            if j != skip and p.liked_image_id not in banned and p.disliked_image_id not in banned
        ]
        chosen = rng.sample(pool, min(self.n_ref, len(pool)))
        hist = [HPair(p.liked_image_id, p.disliked_image_id, p.prompt) for p in chosen]
        return train_history_items(hist, rng) if self.shuffle_history else eval_history_items(hist)

    def sample(self, rng: random.Random, history: bool = True, swap_rng: random.Random | None = None) -> Sample:
        """One target pair and its user's history; with `swap_rng`, also a random other user's history
        for the same targets (from its own generator, so runs without it draw the very same samples)."""
        u, i = self.flat[rng.randrange(len(self.flat))]
        t = self.users[u][i]
        items: list[HistoryItem] = []
        banned = {t.liked_image_id, t.disliked_image_id}
        if history and self.n_ref > 0:
            items = self._history(rng, u, banned, skip=i)
        swap_items = None
        if swap_rng is not None and history and self.n_ref > 0 and len(self.users) > 1:
            names = self._names
            other = names[swap_rng.randrange(len(names) - 1)]
            if other == u:  # uniform over the other users
                other = names[-1]
            swap_items = self._history(swap_rng, other, banned)
        return Sample(items, t.liked_image_id, t.disliked_image_id, t.prompt, u, swap_items)

    @property
    def _names(self) -> list[str]:
        if not hasattr(self, "_user_names"):
            self._user_names = list(self.users)
        return self._user_names

    def batch(
        self, step: int, micro: int, process: int, size: int, history: bool = True, swap: bool = False
    ) -> list[Sample]:
        rng = self.rng(step, micro, process)
        swap_rng = random.Random(f"prefcli-swap|{self.seed}|{process}|{step}|{micro}") if swap else None
        return [self.sample(rng, history, swap_rng) for _ in range(size)]


def _pack(encoder: Any, store: PixelStore, seqs: list, pad_id: int) -> tuple:
    from prefcli.vlm.model import pad_sequences

    ids, mask = pad_sequences([s.ids for s in seqs], pad_id, "right")
    slots = [im for s in seqs for im in s.images]
    uniq = list(dict.fromkeys(slots))
    where = {u: k for k, u in enumerate(uniq)}
    index = torch.tensor([where[i] for i in slots], dtype=torch.long)
    return ids, mask, store.get(uniq), index, tuple(uniq)


def collate_pairs(encoder: Any, samples: Sequence[Sample], store: PixelStore) -> PairBatch:
    """Each sample's context with its liked target, then the same contexts with the disliked targets.

    When the samples carry a swapped history (``swap_items``), two more blocks
    follow: the swapped contexts with the liked, then the disliked targets.
    """
    seqs = [encoder.encode(s.items, s.liked, s.prompt) for s in samples]
    seqs += [encoder.encode(s.items, s.disliked, s.prompt) for s in samples]
    if samples and all(s.swap_items is not None for s in samples):
        seqs += [encoder.encode(s.swap_items, s.liked, s.prompt) for s in samples]
        seqs += [encoder.encode(s.swap_items, s.disliked, s.prompt) for s in samples]
    ids, mask, pv, index, uniq = _pack(encoder, store, seqs, encoder.pad_id)
    return PairBatch(ids, mask, pv, index, len(samples), uniq)


def collate_sequences(encoder: Any, seqs: list, store: PixelStore) -> PairBatch:
    ids, mask, pv, index, uniq = _pack(encoder, store, seqs, encoder.pad_id)
    return PairBatch(ids, mask, pv, index, len(seqs), uniq)


# ---------------------------------------------------------------------------
# validation / test tasks


@dataclass
class EvalTask:
    task_id: str
    user_id: str
    seen: bool | None
    history: list  # HPairs, stored order
    candidates: list  # image ids
    prompts: list
    liked_index: int


def load_eval_tasks(
    dataset: Any, split: str, n_ref: int | None = None, protocol: str = "1v1", max_tasks: int = 0, seed: int = 0
) -> list[EvalTask]:
    """The dataset's materialized tasks (a seeded subset when `max_tasks` is set)."""
    rows = dataset.task_rows(split, protocol, n_ref)
    if max_tasks and len(rows) > max_tasks:
        rows = random.Random(f"prefcli-val|{seed}").sample(rows, max_tasks)
    need = {pid for r in rows for pid in r["history_pair_ids"] or ()}
    lookup = {p.pair_id: p for p in dataset.pairs(split) if p.pair_id in need}
    out = []
    for r in rows:
        missing = [p for p in r["history_pair_ids"] or () if p not in lookup]
        if missing:
            from prefcli.errors import DataError

            raise DataError(
                f"{dataset.root}: task {r['task_id']!r} names history pair {missing[0]!r}, "
                f"which is not among the {split} pairs of pairs.parquet"
            )
        hist = [
            HPair(lookup[p].liked_image_id, lookup[p].disliked_image_id, lookup[p].prompt)
            for p in r["history_pair_ids"] or ()
        ]
        out.append(
            EvalTask(
                r["task_id"],
                r["user_id"],
                r["seen"],
                hist,
                list(r["candidate_image_ids"]),
                list(r["candidate_prompts"]),
                int(r["liked_index"]),
            )
        )
    return out


def eval_sequences(encoder: Any, task: EvalTask, history: bool = True, history_pairs: list | None = None) -> list:
    """One sequence per candidate: the task's history in evaluation order (or `history_pairs`), then the candidate."""
    hist = task.history if history_pairs is None else history_pairs
    items = eval_history_items(hist) if history else []
    prefix = encoder.encode_prefix(items)
    from prefcli.vlm.template import EncodedSequence

    return [EncodedSequence(prefix, encoder.encode_suffix(prefix, c, p)) for c, p in zip(task.candidates, task.prompts)]


# ---------------------------------------------------------------------------
# attribute targets (synthetic worlds only)


def world_image_ids(world_dir: Any) -> dict[str, str]:
    """Dataset image id (sha256 of the stored bytes) -> the synthetic world's image uid."""
    from prefcli.data.synthetic import dataset_image_uids

    return dataset_image_uids(world_dir)


class AttributeTargets:
    """Standardized visual-attribute vectors phi(image) of a synthetic world, by dataset image id.

    Used by ``kind: attributes`` stages to teach a tiny vision tower what the
    images show before it learns anyone's taste (docs/architecture.md, "Toy scale").
    Attributes are facts about images, not preferences: no label leaks.
    """

    def __init__(self, world_dir: Any, image_ids: Sequence[str]) -> None:
        import numpy as np

        from prefcli.data.synthetic import load_truth
        from prefcli.errors import DataError

        truth = load_truth(world_dir)
        uid = world_image_ids(world_dir)
        ids = [i for i in dict.fromkeys(image_ids) if i in uid]
        if not ids:
            raise DataError(f"{world_dir}: none of the dataset's training images belong to this synthetic world")
        feats = np.stack([truth.features(uid[i]) for i in ids]).astype("float32")
        mu, sd = feats.mean(0), feats.std(0) + 1e-6
        self.ids = ids
        self.targets = torch.from_numpy((feats - mu) / sd)
        self.dim = int(self.targets.shape[1])

    def batch(self, rng: random.Random, size: int) -> tuple[list[str], torch.Tensor]:
        idx = [rng.randrange(len(self.ids)) for _ in range(size)]
        return [self.ids[i] for i in idx], self.targets[idx]
