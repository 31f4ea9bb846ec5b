"""Candidates decoded just before a scorer needs them; an unreadable one reported and left out.

A folder scan reads only each file's header (prefcli.images.check_image_bytes),
so a file whose pixels turn out to be truncated or corrupt is found when it is
first decoded, inside a run. Ranking asks for such a file to be skipped and
reported, as a scan would have done, and the rest ranked: the runner hands
each batch through ``split`` first, which decodes the batch (the one decode:
the candidate keeps the pixels for the scorer, the runner releases them after)
and leaves the unreadable ones out of the scorer's call.
"""

from __future__ import annotations

from typing import Sequence

from prefcli.errors import ImageError
from prefcli.types import Candidate


class ReadableGuard:
    """Which candidates decode; unreadable ones remembered by image id with (path, reason)."""

    def __init__(self) -> None:
        self.bad: dict[str, tuple[str, str]] = {}
        #: False once every image the scorer reads has been decoded elsewhere (a probe's embeddings).
        self.decode = True

    def ok(self, c: Candidate) -> bool:
        if c.image_id in self.bad:
            return False
        if self.decode:
            try:
                c.original  # noqa: B018 - decodes now and keeps the pixels for the scorer
            except ImageError as e:
                self.bad[c.image_id] = (c.path or c.image_id, getattr(e, "reason", str(e)))
                return False
        return True

    def split(self, cands: Sequence[Candidate]) -> list[bool]:
        return [self.ok(c) for c in cands]

    @property
    def unreadable(self) -> list[tuple[str, str]]:
        return list(self.bad.values())
