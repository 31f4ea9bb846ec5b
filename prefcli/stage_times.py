"""Where a run's seconds go: decoding images, preprocessing them, the model (the throughput report).

Each stage is a process-wide counter of calls and seconds; a run reads the
difference between two snapshots (prefcli.harness.runner.RunStats). Seconds are
exclusive: an image decoded lazily inside a scorer's preprocessing, or
preprocessed inside its `score`, counts for the inner stage only, so the three
never count the same second twice within a thread. Decodes made ahead by the
decode threads (`--workers`) run beside the model, so the stages may add up to
more than the wall time.

Preprocessing is timed where the shared code does it (`ClipBundle.pixel_values`
for the CLIP family, `PrefVLM.pixels` for the IDEFICS2 family); a scorer that
preprocesses on its own counts that time as model time.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

F = TypeVar("F", bound=Callable)


class Stage:
    """Calls and exclusive seconds of one stage, summed over every thread of the process."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.seconds = 0.0
        self._lock = threading.Lock()

    def add(self, seconds: float, calls: int = 1) -> None:
        with self._lock:
            self.count += calls
            self.seconds += seconds

    @property
    def decoded(self) -> int:  # the name the decode stage's readers know
        return self.count

    def snapshot(self) -> tuple[int, float]:
        with self._lock:
            return self.count, self.seconds


_local = threading.local()


@contextmanager
def timed(stage: Stage) -> Iterator[None]:
    """Count the block's seconds for `stage`, less those of stages timed inside it (same thread)."""
    stack = _local.__dict__.setdefault("stack", [])
    inner = [0.0]
    stack.append(inner)
    t0 = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - t0
        stack.pop()
        if stack:
            stack[-1][0] += elapsed
        stage.add(max(0.0, elapsed - inner[0]))


def timed_fn(stage: Stage) -> Callable[[F], F]:
    """Decorator form of `timed`."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with timed(stage):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return wrap


#: Every image decode of this process (prefcli.images.decode_image).
DECODE = Stage("decode")
#: Images turned into model input tensors by the shared preprocessing code.
PREPROCESS = Stage("preprocess")
#: Calls into a scorer's model (condition, score, embeddings), less the decoding and preprocessing inside them.
MODEL = Stage("model")
