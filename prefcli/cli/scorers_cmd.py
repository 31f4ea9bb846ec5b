"""`prefcli scorers`: what can score, what it needs, and whether it runs here."""

from __future__ import annotations

from prefcli.cli import app
from prefcli.cli.options import Format, FormatOpt


@app.command("scorers")
def scorers_command(fmt: FormatOpt = Format.table) -> None:
    """List every registered scorer: inputs, differentiability, default weights, and whether it can run here.

    Scorers come from plugins (the "prefcli" entry-point group); first-party
    ones are registered the same way. Nothing heavy is imported to list them.

    Examples:

        prefcli scorers

        prefcli scorers --format json
    """
    from prefcli import output, plugins

    rows = []
    for name, spec in sorted(plugins.scorers().items()):
        missing = spec.missing_requirements()
        rows.append(
            {
                "name": name,
                "aliases": ", ".join(spec.aliases),
                "needs": "+".join(n for n in ("image", "prompt", "history") if n in spec.needs),
                "kind": spec.kind,
                "differentiable": spec.differentiable,
                "trainable": spec.trainable,
                "default_weights": spec.default_weights,
                "runs_here": not missing,
                "missing": ", ".join(missing) + (f" ({spec.install_hint})" if missing and spec.install_hint else ""),
                "plugin": spec.plugin,
                "description": spec.description,
            }
        )
    columns = ["name", "kind", "needs", "differentiable", "trainable", "runs_here", "default_weights"]
    if any(r["missing"] for r in rows):
        columns.append("missing")
    headers = {"differentiable": "grad", "trainable": "train", "runs_here": "runs here", "default_weights": "default weights"}
    output.emit(rows, fmt.value, columns=None if fmt.value == "json" else columns, title="prefcli scorers", headers=headers)
