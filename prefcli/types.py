"""The few value types every part of prefcli passes around.

Images are loaded lazily: a Candidate carries its content id (sha256 of the
bytes) at once, and decodes pixels only when a scorer asks, so an evaluation
over thousands of tasks does not hold thousands of decoded images.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image


@dataclass(eq=False)
class Candidate:
    """One image to be scored, with the prompt it was generated from (if any)."""

    image_id: str
    prompt: str | None = None
    path: str | None = None
    loader: Callable[[], "Image.Image"] | None = field(default=None, repr=False)
    _image: Any = field(default=None, repr=False)
    _rgb: Any = field(default=None, repr=False)

    @property
    def original(self) -> "Image.Image":
        """The image in its own mode (palette, alpha, greyscale kept), upright: what a
        general scorer's upstream code would have opened; each scorer converts it its
        upstream's way (see prefcli.images)."""
        if self._image is None:
            if self.loader is None:
                raise ValueError(f"candidate {self.image_id} has neither an image nor a loader")
            self._image = self.loader()
        return self._image

    @property
    def image(self) -> "Image.Image":
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
    def from_image(cls, image: "Image.Image", prompt: str | None = None, image_id: str | None = None) -> "Candidate":
        """Wrap an in-memory image; the id hashes its pixels when no id is given."""
        if image_id is None:
            image_id = hashlib.sha256(image.tobytes() + repr((image.size, image.mode)).encode()).hexdigest()
        return cls(image_id=image_id, prompt=prompt, _image=image)

    @classmethod
    def from_path(cls, path: str, prompt: str | None = None) -> "Candidate":
        """Read and check the file now (so bad files surface early), decode later."""
        from prefcli import images

        image_id = images.content_id_of_file(path)
        return cls(image_id=image_id, prompt=prompt, path=str(path), loader=lambda: images.load_image(path, keep_mode=True))


@dataclass(frozen=True)
class HistoryPair:
    """One remembered judgement: this person preferred `liked` over `disliked`."""

    liked: Candidate
    disliked: Candidate
    prompt: str | None = None
    pair_id: str | None = None


@dataclass(frozen=True)
class UserHistory:
    """A person's past judgements, in their stored order (evaluation keeps it)."""

    pairs: tuple[HistoryPair, ...] = ()
    user_id: str | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    def key(self) -> str:
        """Stable id of the history's content, for caching per-history state."""
        h = hashlib.sha256()
        for p in self.pairs:
            h.update(f"{p.liked.image_id}|{p.disliked.image_id}|{p.prompt or ''}\n".encode())
        return h.hexdigest()

    def truncated(self, n: int) -> "UserHistory":
        return UserHistory(pairs=tuple(self.pairs[:n]), user_id=self.user_id)


@dataclass
class RankTask:
    """One evaluation question: which of these candidates does the user like?"""

    task_id: str
    candidates: Sequence[Candidate]
    liked_index: int
    history: UserHistory = field(default_factory=UserHistory)
    user_id: str | None = None
    protocol: str = "1v1"
    seen: bool | None = None
    n_ref: int | None = None
