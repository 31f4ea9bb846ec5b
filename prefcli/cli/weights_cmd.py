"""`prefcli weights ls|pull|rm`: the weights this machine has, fetching them, removing downloads."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from prefcli.cli import app
from prefcli.cli.options import Format, FormatOpt, OfflineOpt

weights_app = typer.Typer(
    help="List, fetch and remove scorer weights (the Hugging Face cache and prefcli's download cache).",
    no_args_is_help=True,
)
app.add_typer(weights_app, name="weights")

TargetsArg = Annotated[
    list[str],
    typer.Argument(metavar="TARGET", help="Scorer names (their default weights) or weights specs.", show_default=False),
]
HEADERS = {"size": "size", "last_used": "last used", "scorers": "default of"}


def _emit(rows: list[dict], fmt: str, columns: list[str], title: str, **options) -> None:
    from prefcli import output, readable
    from prefcli.weights import is_offline

    if fmt != "json":
        rows = [
            {
                **r,
                "size": readable.size(r.get("size_bytes")),
                **({"scorers": ", ".join(r["scorers"])} if isinstance(r.get("scorers"), list) else {}),
            }
            for r in rows
        ]
    output.emit(
        rows,
        fmt,
        columns=None if fmt == "json" else columns,
        title=title,
        headers=HEADERS,
        about={"options": {"offline": is_offline(options.pop("offline", None)), **options}},
    )


@weights_app.command("ls")
def ls_command(fmt: FormatOpt = Format.table) -> None:
    """Every scorer's default weights and every weights spec loaded before: where, size, revision, present.

    Read from the caches only: nothing is fetched and nothing heavy imported.
    "state" is the same fact `prefcli scorers` shows as "weights here".

    Examples:

        prefcli weights ls

        prefcli weights ls --format json
    """
    from prefcli import plugins, weights_used
    from prefcli.weights_here import facts, scorer_weights

    rows: dict[str, dict] = {}

    def add(spec: str) -> dict:
        f = facts(spec)
        return rows.setdefault(
            f.spec,
            {
                "spec": f.spec,
                "kind": f.kind,
                "scorers": [],
                "state": f.state,
                "present": f.present,
                "size_bytes": f.size_bytes,
                "revision": f.revision,
                "where": f.where,
                "last_used": None,
            },
        )

    for name, spec in sorted(plugins.scorers().items()):
        if not spec.base:  # a probe shares its base scorer's weights
            for w, how in scorer_weights(spec):
                add(w)["scorers"].append(name if how == "--weights" else f"{name} ({how})")
    for e in weights_used.read():
        add(e["spec"])["last_used"] = e["last_used"]
    _emit(
        list(rows.values()),
        fmt.value,
        ["spec", "scorers", "state", "size", "revision", "last_used", "where"],
        "prefcli weights",
    )


IncludeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--include",
        metavar="PATTERN",
        help="Hub files to fetch (repeatable, glob); default: configs, tokenizers and weights (safetensors, else pickles).",
    ),
]


@weights_app.command("pull")
def pull_command(
    target_args: TargetsArg, include: IncludeOpt = None, offline: OfflineOpt = False, fmt: FormatOpt = Format.table
) -> None:
    """Download weights: a scorer's default weights, or any weights spec.

    Hub repositories go into the Hugging Face cache (where every scorer
    looks), https URLs into prefcli's cache, checked against their sha256
    when the URL carries one (`#sha256=HEX`). Offline (--offline,
    HF_HUB_OFFLINE=1 or PREFCLI_OFFLINE=1) it says what it would fetch and
    exits 2.

    Examples:

        prefcli weights pull hpsv2 aesthetic

        prefcli weights pull hf-hub:xswu/HPSv2 --include HPS_v2.1_compressed.pt
    """
    from prefcli.errors import WeightsError
    from prefcli.weights import is_offline
    from prefcli.weights_here import facts
    from prefcli.weights_pull import plan_line, pull_one, targets

    todo = [t for given in target_args for t in targets(given)]
    inc = list(include or [])
    if is_offline(offline or None):
        # A hub repository is "here" only by its files; which ones a pull would add needs the hub, so offline names it.
        missing = [t for t in todo if not facts(t.spec).present or (facts(t.spec).kind == "hub" and inc)]
        if missing:
            why = "--offline" if offline else "HF_HUB_OFFLINE or PREFCLI_OFFLINE is set"
            raise WeightsError(
                f"offline mode is on ({why}); `prefcli weights pull` would fetch: "
                + "; ".join(plan_line(t, inc) for t in missing)
                + ". Run it on a machine with network and copy the Hugging Face cache and prefcli's cache across"
            )
    rows = [pull_one(t, inc) if not is_offline(offline or None) else _here_row(t) for t in todo]
    _emit(
        rows,
        fmt.value,
        ["target", "spec", "action", "files", "size", "where"],
        "prefcli weights pull",
        offline=offline or None,
        include=inc,
    )


def _here_row(t) -> dict:
    from prefcli.weights_here import facts

    f = facts(t.spec)
    return {
        "target": t.given,
        "scorer": t.scorer,
        "spec": f.spec,
        "action": "already here",
        "files": None,
        "size_bytes": f.size_bytes,
        "revision": f.revision,
        "where": f.where,
    }


YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Remove without asking.")]


@weights_app.command("rm")
def rm_command(target_args: TargetsArg, yes: YesOpt = False, fmt: FormatOpt = Format.table) -> None:
    """Remove downloaded weights from the caches: a scorer's default weights, or a weights spec.

    Only what was downloaded is removed: a hub repository's snapshots in the
    Hugging Face cache (through huggingface_hub's own cache deletion) or a
    URL's file in prefcli's cache. A local path is refused: it is yours. Asks
    before removing unless --yes.

    Examples:

        prefcli weights rm hpsv2

        prefcli weights rm hf-hub:xswu/HPSv2 --yes
    """
    from prefcli import readable
    from prefcli.errors import WeightsError
    from prefcli.weights_pull import plan_removal, remove, targets

    todo = [t for given in target_args for t in targets(given)]
    plans = [(t, plan_removal(t)) for t in todo]
    found = [p for _, p in plans if p is not None]
    if found and not yes:
        if not sys.stdin.isatty():
            raise WeightsError(
                "`prefcli weights rm` would remove "
                + "; ".join(f"{p.spec} ({readable.size(p.size_bytes)})" for p in found)
                + "; pass --yes to remove without asking (no terminal to ask on)"
            )
        for p in found:
            print(f"{p.spec}: {readable.size(p.size_bytes)} in {', '.join(str(x) for x in p.paths)}", file=sys.stderr)
        if not typer.confirm(f"Remove {len(found)} download{'s' if len(found) != 1 else ''}?", err=True):
            raise typer.Exit(1)
    rows = []
    for t, p in plans:
        if p is None:
            from prefcli.weights_here import facts

            rows.append(
                {
                    "target": t.given,
                    "scorer": t.scorer,
                    "spec": facts(t.spec).spec,
                    "action": "not here",
                    "size_bytes": 0,
                    "where": "",
                }
            )
        else:
            rows.append(remove(p))
    _emit(rows, fmt.value, ["target", "spec", "action", "size", "where"], "prefcli weights rm", yes=yes)
