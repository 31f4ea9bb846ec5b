"""Progress for people and for batch logs: a rich bar on a terminal, plain lines elsewhere.

A rich bar redraws one line with carriage returns; in a SLURM or nohup log
that shows nothing until the end (or a wall of control codes). When stderr
is not a terminal, ``progress_bar`` returns ``PlainProgress`` instead: the
same small API (``add_task``, ``advance``, ``update``, a context manager),
printing one ordinary line per task every ``PREFCLI_PROGRESS_INTERVAL``
seconds (default 5) and when a task finishes. The line names the command
(so a log shared by several steps says whose line it is), the count, and the
stage, which is the task's description::

    [rank 30/60] scoring with clip · 50.0% · 12s elapsed · ~12s left
    [eval 120/288] scoring clip · 41.7% · 12s elapsed · ~17s left

``PREFCLI_PROGRESS=plain`` or ``rich`` forces one or the other.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prefcli.running_command import current_command

DEFAULT_INTERVAL = 5.0


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("PREFCLI_PROGRESS_INTERVAL", DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    if s < 120:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 120:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


class _Task:
    def __init__(self, description: str, total: float | None, completed: float, fields: dict) -> None:
        self.description, self.total, self.completed, self.fields = description, total, completed, dict(fields)
        self.start = time.monotonic()
        self.start_completed = completed
        self.last_print = self.start
        self.printed_done = False


def _labels(fields: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    return dict(fields) if isinstance(fields, Mapping) else {f: f for f in fields}


class PlainProgress:
    """Rich's Progress API, as periodic plain lines on a stream (stderr by default).

    `fields` are the task fields each line repeats, either names or {name: label}
    (e.g. {"acc": "val top-1"}, or {"n": "{what}"} to take the label from field `what`);
    an empty label shows the value alone; `command` prefixes the count (default: the CLI command).
    """

    def __init__(
        self,
        fields: Sequence[str] | Mapping[str, str] = (),
        disable: bool = False,
        stream: Any = None,
        interval: float | None = None,
        command: str | None = None,
    ) -> None:
        self.fields = _labels(fields)
        self.command = current_command() if command is None else command
        self.disable = disable
        self.stream = stream
        self.interval = _interval() if interval is None else interval
        self.tasks: dict[int, _Task] = {}

    # -- context -------------------------------------------------------------
    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        for _tid, t in self.tasks.items():
            if not t.printed_done and t.completed > t.start_completed:
                self._print(t)
                t.printed_done = True

    # -- tasks ---------------------------------------------------------------
    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields: Any) -> int:
        tid = len(self.tasks)
        self.tasks[tid] = _Task(description, total, completed, fields)
        return tid

    def advance(self, task_id: int, advance: float = 1) -> None:
        t = self.tasks[task_id]
        self._changed(t, t.completed + advance)

    def update(
        self,
        task_id: int,
        *,
        completed: float | None = None,
        total: float | None = None,
        advance: float | None = None,
        description: str | None = None,
        **fields: Any,
    ) -> None:
        t = self.tasks[task_id]
        if total is not None:
            t.total = total
        if description is not None:
            t.description = description
        news = {k: v for k, v in fields.items() if t.fields.get(k) != v}
        t.fields.update(fields)
        new = t.completed
        if completed is not None:
            new = completed
        if advance is not None:
            new += advance
        if t.printed_done and news and new == t.completed:
            self._print(t)  # a number that arrives after the last step (train's validation) is still said
            return
        self._changed(t, new)

    def reset(
        self,
        task_id: int,
        *,
        total: float | None = None,
        completed: float = 0,
        description: str | None = None,
        **fields: Any,
    ) -> None:
        t = self.tasks[task_id]
        self.tasks[task_id] = _Task(
            t.description if description is None else description,
            t.total if total is None else total,
            completed,
            {**t.fields, **fields},
        )

    def remove_task(self, task_id: int) -> None:
        self.tasks.pop(task_id, None)

    def print(self, line: str) -> None:
        """A message between progress lines (rich's `progress.console.print`)."""
        print(line, file=self.stream or sys.stderr, flush=True)

    # -- output --------------------------------------------------------------
    def _changed(self, t: _Task, completed: float) -> None:
        t.completed = completed
        now = time.monotonic()
        done = t.total is not None and completed >= t.total
        if done and not t.printed_done:
            self._print(t, now)
            t.printed_done = True
        elif not done and now - t.last_print >= self.interval:
            self._print(t, now)

    def line(self, t: _Task, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = now - t.start
        count = f"{t.completed:g}/{t.total:g}" if t.total else f"{t.completed:g}"
        head = f"[{self.command} {count}]" if self.command else f"[{count}]"
        parts = [f"{head} {t.description.strip()}" if t.description.strip() else head]
        if t.total:
            parts.append(f"{100.0 * t.completed / t.total:.1f}%")
        for f, label in self.fields.items():
            value = str(t.fields.get(f, ""))
            if value:
                label = label.format(**t.fields) if "{" in label else label  # e.g. "{what}": another field names it
                parts.append(f"{label} {value}" if label else value)
        parts.append(f"{_fmt_seconds(elapsed)} elapsed")
        rate_done = t.completed - t.start_completed
        if t.total and 0 < rate_done and t.completed < t.total:
            parts.append(f"~{_fmt_seconds(elapsed / rate_done * (t.total - t.completed))} left")
        return " · ".join(parts)

    def _print(self, t: _Task, now: float | None = None) -> None:
        if self.disable:
            return
        t.last_print = time.monotonic() if now is None else now
        stream = self.stream or sys.stderr
        print(self.line(t, now), file=stream, flush=True)


def note(bar: Any, line: str) -> None:
    """Print a line on stderr above a running bar (rich) or between progress lines (plain)."""
    if isinstance(bar, PlainProgress):
        bar.print(line)
    elif getattr(getattr(bar, "live", None), "is_started", False):
        bar.console.print(line, markup=False, highlight=False)
    else:
        print(line, file=sys.stderr, flush=True)


def use_plain(stream: Any = None) -> bool:
    """Plain lines unless the stream (stderr) is a terminal; PREFCLI_PROGRESS=plain|rich decides first."""
    forced = os.environ.get("PREFCLI_PROGRESS", "").lower()
    if forced in ("plain", "rich"):
        return forced == "plain"
    stream = stream or sys.stderr
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):
        return True


def progress_bar(
    enabled: bool,
    columns: Sequence[Any] | None = None,
    fields: Sequence[str] | Mapping[str, str] = (),
    transient: bool = False,
) -> Any:
    """A rich Progress on a terminal, else PlainProgress (both disabled when not `enabled`).

    `columns` are rich columns (default: description, bar, M/N, elapsed, remaining);
    `fields` are the task fields the plain lines repeat (e.g. "loss", or {"acc": "val top-1"}).
    Every command that runs longer than a few seconds reports through this one function.
    """
    if use_plain():
        return PlainProgress(fields, disable=not enabled)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    cols = (
        list(columns)
        if columns
        else [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ]
    )
    return Progress(*cols, console=Console(stderr=True), disable=not enabled, transient=transient)


@contextlib.contextmanager
def bars_by_name(enabled: bool, describe: Callable[[str], str] = str) -> Iterator[Callable[[str, int, int], None]]:
    """`report(name, done, total)` for work reported by name (each scorer, each phase): one transient bar per
    name, described by `describe(name)`; nothing is drawn before the first report, and the bars go at the end."""
    bar = progress_bar(enabled, transient=True)
    tasks: dict[str, Any] = {}

    def report(name: str, done: int, total: int) -> None:
        if not tasks:
            bar.start()
        if name not in tasks:
            tasks[name] = bar.add_task(describe(name), total=total)
        bar.update(tasks[name], completed=done, total=total)

    try:
        yield report
    finally:
        if tasks:
            bar.stop()


def progress_or_callback(enabled: bool, on_progress: Callable[[int, int], None] | None = None) -> Any:
    """A progress bar on stderr (stdout stays clean for --format json; plain lines in a batch log);
    with `on_progress`, the caller's own reporter is told (done, total) instead."""
    if on_progress is not None:
        return CallbackProgress(on_progress)
    return progress_bar(enabled)


class CallbackProgress:
    """The part of rich's Progress the scoring runners use, reporting (done, total) of the latest task to a callback."""

    def __init__(self, fn: Callable[[int, int], None]):
        self.fn, self.tasks = fn, {}

    def __enter__(self) -> CallbackProgress:
        return self

    def __exit__(self, *exc: Any) -> bool:
        return False

    def add_task(self, description: str, total: int | None = None) -> int:
        self.tasks[len(self.tasks)] = [0, int(total or 0)]
        return len(self.tasks) - 1

    def advance(self, task: int, n: int = 1) -> None:
        t = self.tasks[task]
        t[0] += n
        self.fn(t[0], t[1])

    def update(self, task: int, completed: int | None = None, total: int | None = None) -> None:
        t = self.tasks[task]
        t[0] = t[0] if completed is None else completed
        t[1] = t[1] if total is None else total
