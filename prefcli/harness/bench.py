"""`prefcli bench` as a function: several scorers, protocols and N_ref values, the paper's tables.

History-free scorers are evaluated once per protocol (on the tasks at the
largest N_ref; candidates are the same at every N_ref), history-conditioned
ones once per (protocol, N_ref). Every run goes through the score cache, so
an interrupted bench resumes and a second bench over the same dataset
recomputes nothing. Outputs in `out_dir`:

- `table1_1v1.*`, `table2_1v3.*`, `table3_seen_unseen.*`, `nref_sweep.*` as
  `.md`, `.tex` (booktabs), `.csv` and `.json`; all tables together in
  `tables.md` and `tables.tex`;
- `nref_top1.{png,pdf,svg}`: top-1 against N_ref for history-conditioned
  scorers; `seen_unseen_gap.{png,pdf,svg}`: seen and unseen users' top-1
  and their gap per N_ref (when the split has both);
- `results.json`: provenance, every run record and every table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefcli.errors import ConfigError
from prefcli.harness import metrics


def parse_weights(entries: Sequence[str], scorers: Sequence[str]) -> tuple[str | None, dict[str, str]]:
    """`--weights tiny` (every scorer) and `--weights clip=path` (one scorer) → (default, per-scorer); prefcli.weights.split_specs."""
    from prefcli.weights import split_specs

    return split_specs(entries, scorers)


def weights_for(name: str, default: str | None, per: dict[str, str], base: str | None = None) -> str | None:
    """A probe without weights of its own uses its base scorer's."""
    if name in per:
        return per[name]
    if base and base in per:
        return per[base]
    return default


def scoped_options(pairs: dict[str, str], scorers: Sequence[str]) -> dict[str, dict[str, str]]:
    """`-o SCORER.KEY VALUE` → {scorer: {KEY: VALUE}}; a bare KEY goes to every scorer that declares it (prefcli.options.scoped)."""
    from prefcli.plugins import scoped_options as scopes

    return scopes(pairs, scorers, among="the benchmarked scorers")


@dataclass
class BenchConfig:
    dataset: str
    scorers: list[str]
    weights: list[str] = field(default_factory=list)
    protocols: list[str] = field(default_factory=list)  # empty: every protocol the dataset has
    n_refs: list[int] = field(default_factory=list)  # empty: every N_ref the dataset has
    split: str = "test"
    batch_size: int = 32
    device: str = "cpu"
    dtype: str | None = None
    seed: int = metrics.DEFAULT_SEED
    n_boot: int = metrics.DEFAULT_BOOTSTRAP
    cache_dir: str | None = None
    use_cache: bool = True
    limit: int | None = None
    #: Scorer options per scorer name (strings from the CLI or typed values).
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    workers: int = 0  # decode threads (the scores do not depend on them)
    image_cache_mb: float | None = (
        None  # decoded images shared by every run of the bench (None: prefcli.image_cache's default)
    )

    def validate(self) -> None:
        if not self.scorers:
            raise ConfigError("--scorers: give at least one scorer")
        bad = [p for p in self.protocols if p not in ("1v1", "1v3", "rating")]
        if bad:
            raise ConfigError(f"--protocols: unknown protocol(s) {bad}; use 1v1, 1v3 and/or rating")
        if any(n < 1 for n in self.n_refs):
            raise ConfigError(f"--n-ref: give positive integers, got {self.n_refs}")


def run_bench(
    cfg: BenchConfig,
    *,
    dataset: Any = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    on_records: Callable[[dict, list], None] | None = None,
) -> tuple[list[dict], dict]:
    """Run every (scorer, protocol, N_ref); return (run records, provenance).

    `cfg.device` may be "auto": it is resolved here, once, for every scorer (the provenance records the result).

    `on_records(run, task_records)` is called after each run (`--log-samples`).
    """
    from prefcli import plugins
    from prefcli.devices import resolve_device
    from prefcli.harness import results, source
    from prefcli.harness.cache import CacheDir
    from prefcli.harness.evaluate import evaluate
    from prefcli.harness.runner import ScorerHandle, process_device

    cfg.validate()
    specs = {name: plugins.get_scorer_spec(name) for name in cfg.scorers}  # unknown names fail first
    options = {name: specs[name].parse_options(cfg.options.get(name)) for name in cfg.scorers}  # then bad options
    # One device for every scorer, resolved once (under `accelerate launch`, this process's own GPU).
    device = process_device(resolve_device(cfg.device))
    default_w, per_w = parse_weights(cfg.weights, cfg.scorers)
    ds = dataset if dataset is not None else source.open_dataset(cfg.dataset)
    cache = CacheDir(cfg.cache_dir) if cfg.use_cache else None
    n_refs = sorted(set(cfg.n_refs)) or source.n_ref_values(ds)
    protocols = list(cfg.protocols) or source.protocol_values(ds, cfg.split)
    task_lists: dict[tuple[str, int], list] = {}

    def tasks_for(protocol: str, n_ref: int) -> list:
        if (protocol, n_ref) not in task_lists:
            task_lists[(protocol, n_ref)] = source.load_tasks(ds, cfg.split, protocol, n_ref, cfg.limit)
        return task_lists[(protocol, n_ref)]

    runs: list[dict] = []
    handles: dict[str, ScorerHandle] = {}
    from prefcli import image_cache

    # One decode per image for the whole bench: its protocols and N_ref values meet the same images again.
    shared_images = image_cache.session(cfg.image_cache_mb)
    shared_images.__enter__()
    try:
        for name in cfg.scorers:
            spec = specs[name]
            handle = ScorerHandle(
                spec,
                weights_for(name, default_w, per_w, spec.base or None),
                device=device,
                device_resolved=True,
                dtype=cfg.dtype,
                cache=cache,
                options=options[name],
            )
            handles[name] = handle
            for protocol in protocols:
                for n_ref in n_refs if handle.uses_history else [max(n_refs)]:
                    label = f"{name} {protocol}" + (f" N_ref {n_ref}" if handle.uses_history else "")
                    run, task_records = evaluate(
                        handle, tasks_for(protocol, n_ref), cache=cache, batch_size=cfg.batch_size, n_boot=cfg.n_boot,
                        seed=cfg.seed, progress=progress, split=cfg.split, protocol=protocol, n_ref=n_ref, label=label,
                        workers=cfg.workers,
                    )  # fmt: skip
                    runs.append(run)
                    if on_records is not None:
                        on_records(run, task_records)
                    if log:
                        s = run["stats"]
                        log(
                            f"{label}: {s['candidates_scored']} scored, {s['scores_cached']} from cache, {s['seconds']:.1f}s"
                        )
        # What actually produced each scorer's numbers (dtype and device as used, weights fingerprinted).
        scorer_provenance = {
            n: {"weights": h.weights, "weights_id": h.weights_id, "identity": h.identity} for n, h in handles.items()
        }
    finally:
        shared_images.__exit__(None, None, None)
        if cache is not None:
            cache.close()
    prov = results.provenance(
        command="bench",
        config={**cfg.__dict__, "device": device, "n_refs": n_refs, "protocols": protocols},
        seeds={"bootstrap": cfg.seed},
        scorers=scorer_provenance,
        dataset=results.dataset_provenance(getattr(ds, "info", None), cfg.dataset),
    )
    from prefcli.harness.references import references_for

    prov["references"] = references_for(getattr(ds, "info", None))  # quoted rows, printed as such
    return runs, prov


def write_outputs(runs: Sequence[dict], prov: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write every table as .md/.tex/.csv/.json, tables.md/.tex, the history figures and results.json."""
    from prefcli import atomic
    from prefcli.harness import plots, tables

    out = Path(out_dir)
    # Everything goes into a work folder first and replaces `out` in one swap: a killed bench
    # leaves the old tables or the new ones, never a mix (files prefcli did not write are kept).
    work = atomic.tmp_dir_beside(out)
    names: list[str] = []
    try:
        tabs = tables.bench_tables(runs, references=prov.get("references"))
        for t in tabs:
            for ext, fmt in (("md", "markdown"), ("tex", "latex"), ("csv", "csv"), ("json", "json")):
                atomic.write_text(work / f"{t.name}.{ext}", t.render(fmt))
                names.append(f"{t.name}.{ext}")
        atomic.write_text(work / "tables.md", "\n".join(t.to_markdown() for t in tabs))
        names.append("tables.md")
        atomic.write_text(work / "tables.tex", "\n".join(t.to_latex() for t in tabs))
        names.append("tables.tex")
        top1_runs = [r for r in runs if r.get("protocol") != "rating"]  # the figures are of top-1 runs only
        for p in plots.nref_plot(top1_runs, work / "nref_top1") + plots.gap_plot(top1_runs, work / "seen_unseen_gap"):
            names.append(p.name)
        from prefcli import envelope

        envelope.write(work / "results.json", envelope.bench_document(runs, tabs, prov))
        names.append("results.json")
        atomic.replace_dir(work, out, by="prefcli bench", overwrite=True)
    except BaseException:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        raise
    return {n: out / n for n in names}
