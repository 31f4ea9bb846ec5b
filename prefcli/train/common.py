"""What every trainer shares: the Accelerator, where a run resumes, metrics.jsonl, the progress bar.

The preference-token loop (prefcli.train.loop) and PickScore* (prefcli.train.pickscore_star)
are different models under one run-folder layout and one set of promises: the same
`run` settings mean the same thing, a resumed run continues from its newest checkpoint
and drops what was logged after it. Validation counts a hit with the harness's own rule
(prefcli.harness.metrics.top1_hit: a tie for first place is a miss), never a copy of it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefcli.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from prefcli.train.config import RunConfig, TrainConfig


def mixed_precision_on(run: RunConfig, cpu: bool) -> str:
    """The Accelerator's mixed precision: `run.mixed_precision`, except on the CPU, where it is always "no".

    The shipped full-size configs ask for bf16 (a GPU's); the same config run on the CPU
    (a smoke test, a laptop) must not autocast to a precision that CPU kernels emulate slowly
    and that gives other numbers than the CPU's own float32.
    """
    return "no" if cpu else run.mixed_precision


def make_accelerator(run: RunConfig, out: Path, *, trackers: bool = True) -> Any:
    """The Accelerator of a training run in `out`: its device from `run.device`, its precision by `mixed_precision_on`."""
    from accelerate import Accelerator

    from prefcli.devices import device_kind, resolve_device

    cpu = device_kind(resolve_device(run.device)) == "cpu"
    log_with = (list(run.trackers) or None) if trackers else None
    return Accelerator(cpu=cpu, mixed_precision=mixed_precision_on(run, cpu), log_with=log_with, project_dir=str(out))


def resume_point(out: Path, *, resume: bool, main: bool, say: Callable[[str], None]) -> Path | None:
    """The checkpoint a run continues from (`--resume`: the newest one, or none yet), else None.

    A run started without --resume into a folder that holds checkpoints is refused: it would
    mix two runs' checkpoints and metrics.
    """
    from prefcli.train import checkpoint as ck

    ckpt_root = out / ck.CHECKPOINTS_DIR
    last = ck.latest_checkpoint(ckpt_root) if resume else None
    if resume and last is None:
        say(f"no checkpoint under {ckpt_root}: starting from step 0")
    if not resume and main and ck.list_checkpoints(ckpt_root):
        raise ConfigError(f"{out}: already holds checkpoints; pass --resume to continue it or choose another --out")
    return last


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two saved configs, as 'key: old -> new'."""
    diffs: list[str] = []
    for k in sorted(set(old) | set(new), key=str):
        a, b = old.get(k, "<absent>"), new.get(k, "<absent>")
        key = f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_differences(a, b, key + ".")
        elif a != b:
            diffs.append(f"{key}: {json.dumps(a, default=str)} -> {json.dumps(b, default=str)}")
    return diffs


# Settings a resumed run may change: how it runs, not what it computes.
RESUME_MAY_CHANGE = ("run.device", "run.num_threads", "run.trackers", "run.log_every", "run.keep_last", "_source")


def check_resume_config(out: Path, saved: dict, cfg: TrainConfig, config_file: str) -> None:
    """ConfigError unless `saved` (this run's config record) matches the one the run in `out` started with."""
    path = out / config_file
    try:
        old = json.loads(path.read_text())
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{path}: unreadable ({e}); cannot check that --resume continues the same run") from None
    if not isinstance(old, dict):
        raise ConfigError(f"{path}: not a saved training config (expected a JSON object)")
    diffs = [d for d in config_differences(old, saved) if not d.startswith(RESUME_MAY_CHANGE)]
    if diffs:
        shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
        raise ConfigError(
            f"{out}: --resume with a different config than the run was started with ({shown}); "
            f"resume with the same config, or train into a new --out"
        )


def checkpoint_model(ckpt_root: Path, step: int) -> Path | None:
    """The model folder of the checkpoint at `step`, if it was written."""
    from prefcli.train import checkpoint as ck

    folder = Path(ckpt_root) / ck.checkpoint_name(step) / ck.MODEL_DIR
    return folder if folder.is_dir() else None


def kept_metrics(path: Path, keep_until: int) -> list[str]:
    """The lines of metrics.jsonl up to step `keep_until`; a half-written last line (a kill) is dropped."""
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: unreadable ({e})") from None
    kept = []
    for i, ln in enumerate(lines):
        try:
            rec = json.loads(ln)
        except ValueError:
            if i == len(lines) - 1:
                break  # the line a killed run was writing
            raise ConfigError(f"{path}: line {i + 1} is not JSON; fix or remove the file to resume") from None
        step = rec.get("step", 0) if isinstance(rec, dict) else None
        if not isinstance(step, (int, float)) or isinstance(step, bool):
            raise ConfigError(f"{path}: line {i + 1} has no numeric step; fix or remove the file to resume")
        if step <= keep_until:
            kept.append(ln)
    return kept


class MetricsLog:
    """metrics.jsonl of a run (written by the main process only), and the records in memory."""

    def __init__(self, path: Path, enabled: bool, keep_until: int | None) -> None:
        self.path = path
        self.enabled = enabled
        self.records: list[dict] = []
        from prefcli.atomic import write_text

        if enabled and keep_until is not None and path.is_file():
            # A resumed run drops what the interrupted one logged after its last checkpoint; the
            # rewrite is atomic (a kill during it must not truncate the history).
            write_text(path, "".join(ln + "\n" for ln in kept_metrics(path, keep_until)))
        elif enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, "")

    def log(self, rec: dict) -> None:
        self.records.append(rec)
        if self.enabled:
            from prefcli.atomic import writing
            from prefcli.harness.results import clean_nan

            size = self.path.stat().st_size if self.path.exists() else 0
            try:
                with writing(self.path), self.path.open("a") as f:
                    f.write(json.dumps(clean_nan(rec), allow_nan=False) + "\n")  # a diverged loss is null, not NaN
            except OSError:
                # A full disk may have kept part of the line: cut it, so the history stays whole.
                with contextlib.suppress(OSError), self.path.open("r+b") as f:
                    f.truncate(size)
                raise


def training_progress(enabled: bool) -> Any:
    """The training bar: step M/N, loss, the validation numbers, pairs/s."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    from prefcli.progress import progress_bar

    # `acc` carries its own names ("val top-1 0.802, group-balanced 0.504"): the same words as the
    # "validation" log line and metrics.jsonl's val_acc / val_balanced, never a bare "acc".
    return progress_bar(
        enabled,
        [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[acc]}"),
            TextColumn("{task.fields[sps]} pairs/s"),
            TimeRemainingColumn(),
        ],
        fields={"loss": "loss", "acc": "", "sps": "pairs/s"},
    )
