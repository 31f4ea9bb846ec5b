"""`prefcli scorers`: what can score, what it needs, and whether it runs here."""

from __future__ import annotations

from typing import Annotated

import typer

from prefcli.cli import app
from prefcli.cli.options import Format, FormatOpt

COMMON = (
    ("--weights", "Which weights (forms below)."),
    ("--device", "auto (cuda, else mps, else cpu), cpu, cuda, cuda:N, mps."),
    ("--dtype", "auto (the scorer's choice), fp32, bf16, fp16; provenance records what was used."),
)


def describe_scorer(name: str, fmt: str) -> None:
    """One scorer: what it is, its options (type, default, help), its weights forms."""

    from prefcli import output, plugins

    spec = plugins.get_scorer_spec(name)
    opts = [o.as_row() for o in spec.options.info()]
    info = {
        "name": spec.name,
        "aliases": list(spec.aliases),
        "description": spec.description,
        "needs": sorted(spec.needs),
        "differentiable": spec.differentiable,
        "trainable": spec.trainable,
        "higher_is_better": spec.higher_is_better,
        "version": spec.version,
        "base": spec.base or None,
        "default_weights": spec.default_weights,
        "weights_forms": list(spec.weights_forms),
        "options": opts,
        "plugin": spec.plugin,
        "missing": spec.missing_requirements(),
    }
    if fmt == "json":
        from prefcli import envelope
        from prefcli.weights_here import availability

        have = availability(spec.default_weights)
        info.update(weights_here=have.state, weights_where=have.where)
        envelope.print_doc(envelope.envelope("scorers", info, scorer=spec.name, weights=spec.default_weights or None))
        return
    if fmt == "table":
        print(f"{spec.name}: {spec.description}")
        print(
            f"needs {'+'.join(n for n in ('image', 'prompt', 'history') if n in spec.needs)}; "
            f"{'differentiable' if spec.differentiable else 'not differentiable'}; code version {spec.version}"
            + (f"; aliases {', '.join(spec.aliases)}" if spec.aliases else "")
        )
        none = "each part's own" if spec.kind == "composite" else "none: --weights is required"
        print(f"weights (default {spec.default_weights or none}):")
        for form in spec.weights_forms:
            print(f"  - {form}")
        print()
    columns = ["option", "type", "default", "choices", "help"]
    output.emit(opts, fmt, columns=columns, title=f"{spec.name} options (-o KEY VALUE)")
    if fmt == "table":
        print()
        for flag, text in COMMON:
            print(f"  {flag}: {text}")


@app.command("scorers")
def scorers_command(
    name: Annotated[
        str | None, typer.Argument(help="Show one scorer: its options, defaults and weights forms.", show_default=False)
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """List every registered scorer, or show one scorer's options and weights forms.

    Scorers come from plugins (the "prefcli" entry-point group); first-party
    ones are registered the same way. Nothing heavy is imported to list them.
    With a NAME, the scorer's typed options are listed: each is set with
    `-o KEY VALUE` on rank, eval and bench (`-o SCORER.KEY VALUE` in bench).

    Examples:

        prefcli scorers

        prefcli scorers hpsv2

        prefcli scorers viper --format json
    """
    from prefcli import output, plugins

    if name is not None:
        describe_scorer(name, fmt.value)
        return

    from prefcli.weights import is_offline
    from prefcli.weights_here import DOWNLOAD, availability

    offline = is_offline()
    rows = []
    for name, spec in sorted(plugins.scorers().items()):
        missing = spec.missing_requirements()
        have = availability(spec.default_weights)
        # "yes" only when the code is installed and the default weights are here; never guessed from imports alone.
        if missing:
            runs = "no"
        elif have.usable_now:
            runs = "yes"
        elif have.state == DOWNLOAD:
            runs = "no (offline)" if offline else "after download"
        else:
            runs = "with --weights" if not spec.default_weights else "no"
        rows.append(
            {
                "name": name,
                "aliases": list(spec.aliases),
                "needs": "+".join(n for n in ("image", "prompt", "history") if n in spec.needs),
                "kind": spec.kind,
                "differentiable": spec.differentiable,
                "trainable": spec.trainable,
                "default_weights": spec.default_weights,
                "installed": not missing,
                "weights_here": have.state,
                "weights_where": have.where,
                "runs_here": runs,
                "missing": ", ".join(missing) + (f" ({spec.install_hint})" if missing and spec.install_hint else ""),
                "plugin": spec.plugin,
                "description": spec.description,
            }
        )
    columns = ["name", "kind", "needs", "differentiable", "trainable", "runs_here", "weights_here", "default_weights"]
    if any(r["missing"] for r in rows):
        columns.append("missing")
    headers = {
        "differentiable": "grad",
        "trainable": "train",
        "runs_here": "runs here",
        "weights_here": "weights here",
        "default_weights": "default weights",
    }
    if fmt.value != "json":
        rows = [{**r, "aliases": ", ".join(r["aliases"])} for r in rows]
    output.emit(
        rows,
        fmt.value,
        columns=None if fmt.value == "json" else columns,
        title="prefcli scorers",
        headers=headers,
        about={"options": {"offline": offline}},
    )
