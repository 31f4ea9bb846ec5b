"""The few value types every part of prefcli passes around.

Images are loaded lazily: a Candidate carries its content id (sha256 of the
bytes) at once, and decodes pixels only when a scorer asks, so an evaluation
over thousands of tasks does not hold thousands of decoded images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image


@dataclass(eq=False)
class Candidate:
    """One image to be scored, with the prompt it was generated from (if any)."""

    image_id: str
    prompt: str | None = None
    path: str | None = None
    loader: Callable[[], Image.Image] | None = field(default=None, repr=False)
    _image: Any = field(default=None, repr=False)
    _rgb: Any = field(default=None, repr=False)

    @property
    def original(self) -> Image.Image:
        """The image in its own mode (palette, alpha, greyscale kept), upright: what a
        general scorer's upstream code would have opened; each scorer converts it its
        upstream's way (see prefcli.images)."""
        if self._image is None:
            if self.loader is None:
                raise ValueError(f"candidate {self.image_id} has neither an image nor a loader")
            from prefcli.image_cache import load

            self._image = load(self.image_id, self.loader)  # one decode per image id while a run shares them
        return self._image

    @property
    def image(self) -> Image.Image:
        """The image as RGB, transparency composited onto white (as a viewer shows it)."""
        if self._rgb is None:
            from prefcli.images import to_rgb

            self._rgb = to_rgb(self.original)
        return self._rgb

    def release(self) -> None:
        """Drop decoded pixels (they can be loaded again)."""
        if self.loader is not None:
            self._image = None
            self._rgb = None

    @classmethod
    def from_image(cls, image: Image.Image, prompt: str | None = None, image_id: str | None = None) -> Candidate:
        """Wrap an in-memory image; the id hashes its pixels when no id is given."""
        if image_id is None:
            image_id = hashlib.sha256(image.tobytes() + repr((image.size, image.mode)).encode()).hexdigest()
        return cls(image_id=image_id, prompt=prompt, _image=image)

    @classmethod
    def from_path(cls, path: str, prompt: str | None = None) -> Candidate:
        """Read and check the file now (so bad files surface early), decode later."""
        from prefcli import images

        image_id = images.content_id_of_file(path)
        return cls(
            image_id=image_id, prompt=prompt, path=str(path), loader=lambda: images.load_image(path, keep_mode=True)
        )


@dataclass(frozen=True)
class HistoryPair:
    """One remembered judgement: this person preferred `liked` over `disliked`."""

    liked: Candidate
    disliked: Candidate
    prompt: str | None = None
    pair_id: str | None = None


@dataclass(frozen=True)
class RatedImage:
    """One remembered rating: this person gave `image` the score `rating` (e.g. a Likert step)."""

    image: Candidate
    rating: float
    rating_id: str | None = None


@dataclass(frozen=True)
class UserHistory:
    """A person's past judgements, in their stored order (evaluation keeps it).

    Three kinds of evidence, any mix: `pairs` (liked over disliked, one prompt
    each, Pick-a-Pic), unpaired `liked` / `disliked` images of unequal number
    (PreferImg-Bench lists a user's preferred and non-preferred images without
    pairing them), and `ratings` (PAMELA's Likert scores). Scorers that only
    understand liked/disliked read `liked_images()` / `disliked_images()` or
    `labelled()`, where ratings count as liked above the user's median rating
    and disliked below it.
    """

    pairs: tuple[HistoryPair, ...] = ()
    user_id: str | None = None
    liked: tuple[Candidate, ...] = ()
    disliked: tuple[Candidate, ...] = ()
    ratings: tuple[RatedImage, ...] = ()

    def __len__(self) -> int:
        # Pairs for a pair history (unchanged meaning); otherwise every image judged counts once.
        return len(self.pairs) + len(self.liked) + len(self.disliked) + len(self.ratings)

    def key(self) -> str:
        """Stable id of the history's content, for caching per-history state."""
        h = hashlib.sha256()
        for p in self.pairs:
            h.update(f"{p.liked.image_id}|{p.disliked.image_id}|{p.prompt or ''}\n".encode())
        # A pair-only history keeps the key it always had (score caches stay valid).
        for tag, items in (("L", self.liked), ("D", self.disliked)):
            for c in items:
                h.update(f"{tag}|{c.image_id}|{c.prompt or ''}\n".encode())
        for r in self.ratings:
            h.update(f"R|{r.image.image_id}|{r.rating!r}|{r.image.prompt or ''}\n".encode())
        return h.hexdigest()

    def truncated(self, n: int) -> UserHistory:
        """The first `n` pairs, `n` unpaired images of each side and `n` ratings (the N_ref prefix)."""
        return UserHistory(
            pairs=tuple(self.pairs[:n]),
            user_id=self.user_id,
            liked=tuple(self.liked[:n]),
            disliked=tuple(self.disliked[:n]),
            ratings=tuple(self.ratings[:n]),
        )

    def images(self) -> list[Candidate]:
        """Every image of the history once per mention, in stored order (what a scorer may load)."""
        out: list[Candidate] = []
        for p in self.pairs:
            out += [p.liked, p.disliked]
        out += list(self.liked) + list(self.disliked) + [r.image for r in self.ratings]
        return out

    def _rating_split(self) -> tuple[list[Candidate], list[Candidate]]:
        if not self.ratings:
            return [], []
        import statistics

        median = statistics.median(r.rating for r in self.ratings)
        above = [r.image for r in self.ratings if r.rating > median]
        below = [r.image for r in self.ratings if r.rating < median]
        return above, below

    def liked_images(self) -> list[Candidate]:
        """Liked images of the pairs, then the unpaired liked ones, then ratings above the median."""
        return [p.liked for p in self.pairs] + list(self.liked) + self._rating_split()[0]

    def disliked_images(self) -> list[Candidate]:
        return [p.disliked for p in self.pairs] + list(self.disliked) + self._rating_split()[1]

    def labelled(self) -> list[tuple[Candidate, bool, str | None]]:
        """(image, liked?, prompt) in evaluation order: each pair disliked then liked; then the
        unpaired (and binarized rated) images interleaved disliked/liked, the longer side's rest last."""
        out: list[tuple[Candidate, bool, str | None]] = []
        for p in self.pairs:
            out += [(p.disliked, False, p.prompt), (p.liked, True, p.prompt)]
        up, down = self._rating_split()
        liked, disliked = list(self.liked) + up, list(self.disliked) + down
        for i in range(max(len(liked), len(disliked))):
            if i < len(disliked):
                out.append((disliked[i], False, disliked[i].prompt))
            if i < len(liked):
                out.append((liked[i], True, liked[i].prompt))
        return out

    @property
    def has_ratings(self) -> bool:
        return bool(self.ratings)


@dataclass
class RankTask:
    """One evaluation question: which of these candidates does the user like (or: how does the user rate each)?"""

    task_id: str
    candidates: Sequence[Candidate]
    liked_index: int
    history: UserHistory = field(default_factory=UserHistory)
    user_id: str | None = None
    protocol: str = "1v1"
    seen: bool | None = None
    n_ref: int | None = None
    #: Rating tasks ("rating" protocol): the user's true rating of each candidate, in order;
    #: `liked_index` is then -1 (there is no single liked candidate).
    ratings: Sequence[float] | None = None
