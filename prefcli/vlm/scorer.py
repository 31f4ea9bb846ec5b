"""The scorer side of the IDEFICS2 preference-model family: condition once, score many.

Shared by `preftoken`, `viper` and `idefics` (their plugins subclass it; no
plugin imports another). A subclass only says how to build its
:class:`PrefVLM` (``_build``); everything else is here:

- ``condition(history)`` checks the history, lists it the way the authors'
  evaluation does (each pair disliked, then liked, in stored order; new
  lists, the caller's are never touched) and runs [P_v; <s>; history turns]
  through the language model once, keeping its key/value cache
  (``prefcli.vlm.scoring.condition``);
- ``score(candidates, state)`` runs only each candidate's own turn on top of
  that cache, ``batch_size`` candidates per forward pass, and returns
  Q = softmax(M+, M-)[+] per candidate, in order;
- ``score_histories([(history, candidates), ...])`` is the two for many
  histories at once (``prefcli.vlm.scoring.score_many``): what an evaluation,
  with one short history per task, is scored through;
- ``reward(pixels, prompts, state)`` is the same with gradients, for
  reward-guided generation: (B, 3, H, W) pixels in [0, 1], torch-only
  preprocessing.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from prefcli import messages
from prefcli.errors import HistoryError
from prefcli.scorer import Scorer
from prefcli.types import Candidate
from prefcli.vlm import scoring
from prefcli.vlm.template import eval_history_items, require_balanced

#: History pairs the paper's models were trained and evaluated with.
DEFAULT_N_REF = 8
#: Memory for image features kept within a run (the 8B model: ~0.5 MB an image, ~1,000 images).
FEATURE_CACHE_MB = 512


class ScorerNote(UserWarning):
    """Something a user should know about a score (short history, missing prompt); scoring goes on."""


@dataclass
class HistoryState:
    """What ``condition`` returns: the cached prefix of one user's history."""

    prefix: scoring.PrefixState
    n_pairs: int

    @property
    def length(self) -> int:
        """Cached positions (preference tokens + the history's tokens)."""
        return self.prefix.length


def _memoize_suffixes(encoder: Any, max_entries: int = 4096) -> None:
    """Tokenize each (history, prompt) candidate turn once.

    ``encode_suffix`` tokenizes the whole history text plus the turn to split
    it safely, O(history) per candidate; the ids depend only on the history
    text and the prompt (the image is a placeholder), so candidates sharing a
    prompt reuse them.
    """
    from prefcli.vlm.template import Segment

    if getattr(encoder, "_prefcli_memoized", False) or encoder.style == "compact":
        return
    original = encoder.encode_suffix
    memo: dict[tuple[str, str], tuple[list[int], str | None]] = {}

    def encode_suffix(prefix: Any, image: Any, prompt: str | None = None) -> Any:
        key = (prefix.text or "", prompt or "")
        hit = memo.get(key)
        if hit is None:
            seg = original(prefix, image, prompt)
            if len(memo) >= max_entries:
                memo.clear()
            memo[key] = (list(seg.ids), seg.text)
            return seg
        return Segment(list(hit[0]), [image], hit[1])

    encoder.encode_suffix = encode_suffix
    encoder._prefcli_memoized = True


def _pairs(history: Any) -> list[Any]:
    if history is None:
        return []
    return list(history.pairs if hasattr(history, "pairs") else history)


class CachedVLMScorer(Scorer):
    """An IDEFICS2 preference model as a personalized scorer with a cached history prefix.

    Options: ``batch_size`` (candidates per forward pass, default 16),
    ``device``, ``dtype`` ("float32", "bfloat16", "float16").
    """

    min_history: ClassVar[int] = 1
    #: False for a population model (trained history-free): it is scored without the history.
    reads_history: bool = True
    default_name: ClassVar[str] = "vlm"
    #: Warn when a history has fewer pairs than the model was trained with.
    warn_short_history: ClassVar[bool] = False

    def __init__(
        self,
        weights: str | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        *,
        spec: Any = None,
        options: Any = None,
    ):
        super().__init__(weights, device, dtype, spec=spec, options=options)
        self.n_ref = DEFAULT_N_REF
        self._noted: set[str] = set()
        #: Image features kept across `score_histories` calls (an image recurs in many histories).
        self.features = scoring.FeatureCache(FEATURE_CACHE_MB)
        self.vlm = self._build()
        self.vlm.eval()
        _memoize_suffixes(self.vlm.encoder)
        # Inference only: gradients flow to pixels in `reward`, never into the weights.
        for p in self.vlm.parameters():
            p.requires_grad_(False)

    # -- to implement --------------------------------------------------------
    def _build(self) -> Any:
        raise NotImplementedError

    def modules(self) -> Any:
        return (self.vlm,)

    # -- helpers ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name if self.spec is not None else self.default_name

    @property
    def uses_prompts(self) -> bool:
        """Only the paper's template writes prompts; ViPer's and the compact one have none."""
        return self.vlm.spec.template == "preftoken"

    def _note(self, key: str, message: str) -> None:
        # Once per scorer and kind: an evaluation conditions on thousands of histories.
        if key not in self._noted:
            self._noted.add(key)
            warnings.warn(message, ScorerNote, stacklevel=3)

    def check_history(self, history: Any) -> list[Any]:
        """The history's pairs (a new list), or a HistoryError saying what is required and what was found."""
        pairs = _pairs(history)
        if not pairs and getattr(history, "labelled", None) is not None and history.labelled():
            # Unpaired liked/disliked images (PreferImg-Bench) or ratings: read as labelled turns.
            return []
        if not pairs:
            raise HistoryError(
                f"scorer {self.name} is personalized and needs a history of liked/disliked image pairs "
                f"(at least 1 pair; it was trained with {self.n_ref}); found none. "
                f"Give --likes DIR and --dislikes DIR with the same number of images"
            )
        require_balanced(pairs, source=f"scorer {self.name}: history")
        if self.warn_short_history and len(pairs) < self.n_ref and not messages.asked("history_length"):
            self._note(
                f"short:{len(pairs)}",
                f"scorer {self.name}: the history has {len(pairs)} liked/disliked pair(s) but the model was trained "
                f"with {self.n_ref}; it still scores, less reliably (give {self.n_ref} pairs for the trained setting)",
            )
        return pairs

    def _prompt(self, prompt: str | None, what: str) -> str:
        if prompt:
            return prompt
        # Say what gives the missing prompts: a candidate's prompt and the history's prompts come from different inputs.
        fix = (
            "the history images' prompts (--history-prompts FILE, or prompts.json beside the likes/dislikes folders)"
            if what == "history pairs"
            else "their prompt (rank: --prompt TEXT or --prompts FILE)"
        )
        self._note(
            f"prompt:{what}",
            f"scorer {self.name}: {what} without a prompt are scored with an empty prompt "
            f"(the model reads \"The prompt is '...'\"; give {fix} for the trained setting)",
        )
        return ""

    def _history_items(self, history: Any) -> tuple[list[Any], int]:
        """The history as the model reads it (checked; a new list) and its number of pairs."""
        if not self.reads_history:
            # A population model: trained without histories, scored without one.
            return [], 0
        pairs = self.check_history(history)
        # A new list: disliked, then liked, per pair (then any unpaired or rated images).
        items = eval_history_items(history if hasattr(history, "labelled") else pairs)
        if self.uses_prompts:
            for it in items:
                if not it.prompt:
                    self._prompt(None, "history pairs")
                    break
        return items, len(pairs) or len(items) // 2

    # -- the contract ------------------------------------------------------------
    def condition(self, history: Any) -> HistoryState:
        """Encode [P_v; history] once and keep its key/value cache."""
        items, n_pairs = self._history_items(history)
        with torch.no_grad():
            prefix = scoring.condition(self.vlm, items, pixel_cache={})
        return HistoryState(prefix, n_pairs)

    def _state(self, state: Any) -> HistoryState:
        if not isinstance(state, HistoryState):
            raise HistoryError(
                f"scorer {self.name}: score() needs the state returned by condition(history), got {type(state).__name__}"
            )
        return state

    def _candidate_prompts(self, candidates: Sequence[Candidate]) -> list[str] | None:
        if not self.uses_prompts:
            return None
        return [self._prompt(getattr(c, "prompt", None), "candidates") for c in candidates]

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        """Q(S, z) = softmax(M+, M-)[+] for each candidate after the cached history, in order."""
        st = self._state(state)
        cands = list(candidates)  # never mutate the caller's list
        if not cands:
            return []
        with torch.no_grad():
            out = scoring.score_candidates(
                self.vlm, st.prefix, cands, self._candidate_prompts(cands), batch_size=self.batch_size
            )
        return scoring.q_scores(out)

    def prepare_images(self, images: Sequence[Candidate]) -> None:
        """Preprocess decoded images ahead, in the runner's decode threads (the scores do not change);
        not those whose features this scorer already keeps (an evaluation meets a history in every task)."""
        self.vlm.prepare_pixels([im for im in images if getattr(im, "image_id", None) not in self.features])

    def score_histories(self, jobs: Sequence[tuple[Any, Sequence[Candidate]]]) -> list[list[float]]:
        """``score(candidates, condition(history))`` for many (history, candidates) at once, batched across histories.

        What the harness calls when many histories each have a few candidates
        (an evaluation: one history per task). Each distinct image goes through
        the vision tower once per scorer (features kept by image id), up to
        ``batch_size`` histories share a prefix pass and up to ``batch_size``
        candidates a candidate pass. The numbers are those of ``condition`` +
        ``score`` to fp32 rounding (tests/vlm/test_vlm_batched_scoring.py).
        """
        prepared = []
        for history, candidates in jobs:
            items, _ = self._history_items(history)
            cands = list(candidates)  # never mutate the caller's list
            prepared.append((items, cands, self._candidate_prompts(cands)))
        with torch.no_grad():
            outs = scoring.score_many(self.vlm, prepared, batch_size=self.batch_size, features=self.features)
        return [scoring.q_scores(o) for o in outs]

    def reward(self, pixels: Any, prompts: Sequence[str] | str | None = None, state: Any = None) -> Any:
        """Differentiable Q for (B, 3, H, W) pixels in [0, 1]: a (B,) tensor with gradients to `pixels`."""
        st = self._state(state)
        if pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ValueError(f"reward expects (B, 3, H, W) pixels in [0, 1], got shape {tuple(pixels.shape)}")
        b = int(pixels.shape[0])
        plist: list[str] | None = None
        if self.uses_prompts:
            plist = [prompts] * b if prompts is None or isinstance(prompts, str) else list(prompts)
            if len(plist) == 1 and b > 1:
                plist = plist * b
            if len(plist) != b:
                raise ValueError(f"got {b} images but {len(plist)} prompts")
            plist = [self._prompt(p, "images") for p in plist]
        pre = self.vlm.preprocess
        pv = pre.tensor(pixels.to(self.vlm.device, torch.float32))
        out = scoring.score_candidates(
            self.vlm, st.prefix, [None] * b, plist, batch_size=self.batch_size, pixel_values=pv
        )
        return out.q
