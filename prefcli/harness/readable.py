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

from collections.abc import Sequence

from prefcli.errors import ImageError
from prefcli.types import Candidate


class ReadableGuard:
    """Which candidates decode; unreadable ones remembered by image id with (path, reason).

    With `workers` > 0 the next batch is decoded by a thread pool while the
    scorer works on this one (``prefetch``): Pillow releases the GIL while it
    decodes, so threads decode in parallel, and the decoded image lands in the
    very Candidate every consumer reads (a process pool would copy each
    decoded image back through a pipe, about what decoding it costs, and could
    not share it). Measured by bench/bench_input.py (64 noisy 1024-px PNGs, 2
    cores, load average 17): in turn 20.5 s, 2 threads 12.6 s (1.63x), 2
    processes 16.6 s (1.24x). A scorer with `prepare_images` (the IDEFICS2
    family) also has each image preprocessed in the thread that decoded it.
    At most the batch being scored and the next are held. Unless `skip`, an
    unreadable image raises its ImageError when its turn comes, as without threads.
    """

    def __init__(self, workers: int = 0, skip: bool = True) -> None:
        #: False (eval, bench): an unreadable image is an error that stops the run, as without workers.
        self.skip = skip
        self.bad: dict[str, tuple[str, str]] = {}
        #: False once every image the scorer reads has been decoded elsewhere (a probe's embeddings).
        self.decode = True
        #: The scorer's `prepare_images` (the IDEFICS2 family): the decode threads also preprocess.
        self.prepare = None
        self._pool = None
        self._pending: dict[int, object] = {}  # id(candidate) -> future of its decode
        if workers > 0:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=int(workers), thread_name_prefix="prefcli-decode")

    def prefetch(self, cands: Sequence[Candidate]) -> None:
        """Start decoding `cands` in the background (no-op without workers)."""
        if self._pool is None or not self.decode:
            return
        for c in cands:
            if id(c) not in self._pending and c.image_id not in self.bad and _undecoded(c):
                self._pending[id(c)] = self._pool.submit(self._ahead, c)

    def warm(self, images: Sequence[Candidate]) -> None:
        """Start decoding images the scorer reads besides the candidates (a history), nothing remembered:
        the decoded image lands in the Candidate and in the run's image cache, which hands it to
        whoever asks first (no-op without workers)."""
        if self._pool is None or not self.decode:
            return
        for c in images:
            if _undecoded(c) and c.image_id not in self.bad:
                self._pool.submit(self._ahead, c)

    def _ahead(self, c: Candidate) -> ImageError | None:
        """In a decode thread: decode `c`, then preprocess it when the scorer can take that ahead."""
        err = _decode(c)
        if err is None and self.prepare is not None:
            try:
                self.prepare([c])
            except Exception:  # noqa: BLE001 - the scorer meets the same error in its own call, reported there
                pass
        return err

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def ok(self, c: Candidate) -> bool:
        if c.image_id in self.bad:
            return False
        if self.decode and (id(c) in self._pending or _undecoded(c)):
            pending = self._pending.pop(id(c), None)
            err = pending.result() if pending is not None else _decode(c)
            if err is not None:
                if not self.skip:
                    raise err
                self.bad[c.image_id] = (c.path or c.image_id, getattr(err, "reason", str(err)))
                return False
        return True

    def split(self, cands: Sequence[Candidate]) -> list[bool]:
        return [self.ok(c) for c in cands]

    @property
    def unreadable(self) -> list[tuple[str, str]]:
        return list(self.bad.values())


def _undecoded(c: Candidate) -> bool:
    """Pixels still to decode (a candidate made from an image in memory, or a test's stand-in, has none to)."""
    return c._image is None and c.loader is not None


def _decode(c: Candidate) -> ImageError | None:
    """Decode `c` (it keeps the pixels); why it cannot be decoded, or None."""
    try:
        c.original  # noqa: B018
    except ImageError as e:
        return e
    return None
