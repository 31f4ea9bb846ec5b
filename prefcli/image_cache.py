"""Decoded images shared within a run: one decode per distinct image, in a memory bound (`--image-cache-mb`).

An evaluation meets the same image many times: a person's history in every one
of their tasks, a candidate in several protocols and N_ref values of a bench.
Every Candidate with a loader decodes through `load(image_id, loader)`, which,
while a `session` is open, keeps the decoded image in a least-recently-used
store bounded in megabytes of pixels; the next Candidate of the same image id
(the sha256 of its file: the same bytes) gets the very same image object. Outside a session,
or with a 0 MB bound, every load decodes.

Each Candidate still drops its own reference when the runner releases it, so
what stays in memory is the store (at most its bound) plus the batches in
flight. A file that fails to decode is remembered too: it is reported again,
not read again. Images are shared, so nobody may change one in place (every
scorer and the sheet work on converted copies).

Every loader gives the image as its file holds it (`keep_mode=True`): one
image id, one form.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prefcli.errors import ImageError

#: The bound when none is given: about 340 decoded 1024x1024 RGB images.
DEFAULT_MB = 1024
#: What a remembered decoding failure is charged (its message), so errors too stay bounded.
_ERROR_BYTES = 1024


def image_bytes(im: Any) -> int:
    """Memory a decoded PIL image holds, about: one byte per band per pixel (8-bit images only reach here)."""
    return int(im.width) * int(im.height) * max(1, len(im.getbands()))


class ImageCache:
    """A thread-safe LRU of decoded images (or their decoding errors) by image id, bounded in bytes."""

    def __init__(self, max_mb: float = DEFAULT_MB) -> None:
        if max_mb < 0:
            raise ValueError(f"--image-cache-mb must be 0 or more, got {max_mb}")
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._loading: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def load(self, key: str, loader: Callable[[], Any]) -> Any:
        """The decoded image of `key`: from the store, else `loader()` (kept if it fits); ImageError as loader raises it."""
        if self.max_bytes <= 0:
            return loader()
        while True:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    self.hits += 1
                    return _value(self._items[key][0])
                waiting = self._loading.get(key)
                if waiting is None:
                    self._loading[key] = threading.Event()
                    self.misses += 1
                    break
            waiting.wait()  # another thread is decoding this very image: take its result
            with self._lock:
                if key not in self._items:  # too large to keep: decode it here
                    self.misses += 1
                    return loader()
        try:
            try:
                value: Any = loader()
                size = image_bytes(value)
            except ImageError as e:
                value, size = e, _ERROR_BYTES
            self._put(key, value, size)
        finally:
            with self._lock:
                self._loading.pop(key).set()
        return _value(value)

    def _put(self, key: str, value: Any, size: int) -> None:
        with self._lock:
            if size > self.max_bytes:
                return
            self._items[key] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, gone) = self._items.popitem(last=False)
                self.bytes -= gone

    def stats(self) -> dict:
        return {
            "image_cache_mb": self.max_bytes / (1024 * 1024),
            "image_cache_hits": self.hits,
            "image_cache_misses": self.misses,
        }


def _value(v: Any) -> Any:
    if isinstance(v, ImageError):
        err = ImageError(str(v))  # a fresh one each time: one object raised again and again keeps every traceback
        err.__dict__.update(v.__dict__)
        raise err
    return v


_active: ImageCache | None = None
_active_lock = threading.Lock()


def active() -> ImageCache | None:
    """The store of the session open now, if any."""
    return _active


@contextmanager
def session(max_mb: float | None = None) -> Iterator[ImageCache]:
    """Share decoded images until the block ends (a command's whole run); nested sessions join the outer one."""
    global _active
    with _active_lock:
        outer = _active
        if outer is None:
            _active = ImageCache(DEFAULT_MB if max_mb is None else max_mb)
        mine = _active
    try:
        yield mine
    finally:
        if outer is None:
            with _active_lock:
                _active = None


def load(key: str, loader: Callable[[], Any]) -> Any:
    """Decode through the open session's store, or directly when none is open."""
    cache = _active
    return loader() if cache is None else cache.load(key, loader)
