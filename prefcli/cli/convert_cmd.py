"""`prefcli convert ...`: import models released elsewhere, explicitly and safely."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefcli.cli import app
from prefcli.cli.options import Format, FormatOpt, OfflineOpt

convert_app = typer.Typer(
    help="Convert released checkpoints into prefcli model folders (safetensors; nothing from a pickle is executed).",
    no_args_is_help=True,
)
app.add_typer(convert_app, name="convert")

OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Write into an output that holds files prefcli did not write (those files are kept unless an output file has their name).",
    ),
]


@convert_app.command("learn-user-pref")
def learn_user_pref_command(
    src: Annotated[
        str,
        typer.Argument(
            help="The release: a local folder, or a hub id such as wenyii/learn-user-pref (hf-hub:org/name, optionally @revision)."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Write the prefcli model folder here (a folder prefcli wrote is replaced atomically; any other non-empty folder needs --overwrite).",
        ),
    ],
    base: Annotated[
        str,
        typer.Option(
            "--base",
            help="The IDEFICS2 base model the adapter belongs to (hub id or local folder), recorded in the folder and loaded by the scorer.",
        ),
    ] = "HuggingFaceM4/idefics2-8b",
    n_ref: Annotated[
        int,
        typer.Option(
            "--n-ref", help="History pairs the model was trained with (recorded; the scorer notes shorter histories)."
        ),
    ] = 8,
    offline: OfflineOpt = False,
    overwrite: OverwriteOpt = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Import the preference-token model released by the paper's authors.

    The release holds a LoRA adapter for IDEFICS2-8B and prompt_pool.pt, a
    pickled PromptPool module whose `prompt` parameter (10 x 4096) is the
    set of preference tokens. The tokens are read with a restricted
    unpickler that rebuilds tensors only: no class or function from the
    file is imported or run, and a file that tries to call one is refused.
    A .bin adapter is read the same way and rewritten as safetensors.

    The result is a model folder (vlm_spec.json, adapter/,
    pref_tokens.safetensors) that the preftoken scorer loads; the base
    model's weights are fetched (or found in the cache) when it is first
    used, not now.

    Examples:

        prefcli convert learn-user-pref wenyii/learn-user-pref --out ./ours-paper

        prefcli convert learn-user-pref ./downloads/learn-user-pref --out ./ours-paper --offline

        prefcli rank ./candidates --likes ./liked --dislikes ./disliked --scorer preftoken --weights ./ours-paper --prompt "a cat"
    """
    from prefcli import output
    from prefcli.convert import learn_user_pref

    res = learn_user_pref(src, out, base=base, offline=True if offline else None, n_ref=n_ref, overwrite=overwrite)
    output.emit(res.rows(), fmt.value, columns=["item", "value"], title="converted learn-user-pref")


@convert_app.command("hpsv2")
def hpsv2_command(
    src: Annotated[
        Path,
        typer.Argument(
            help="The HPS checkpoint (e.g. HPS_v2.1_compressed.pt) that holds pickled objects beside its weights."
        ),
    ],
    dst: Annotated[Path, typer.Argument(help="Write the weights here, as a .safetensors file.")],
    overwrite: OverwriteOpt = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Rewrite an HPS v2 checkpoint as safetensors, without running anything from it.

    The official checkpoints pickle objects beside their weights (training
    arguments, ...), which the hpsv2 scorer refuses to unpickle. This reads
    the file with prefcli's restricted loader (torch.load with
    weights_only=True; every class the file names is an inert stand-in;
    a file that would call code while loading, or a TorchScript archive,
    is refused) and writes only the tensors under `state_dict`.

    Examples:

        prefcli convert hpsv2 HPS_v2.1_compressed.pt hps_v2.1.safetensors

        prefcli rank ./candidates --scorer hpsv2 --weights hps_v2.1.safetensors --prompt "a cat"
    """
    from prefcli import output
    from prefcli.convert import checkpoint_to_safetensors

    out, n = checkpoint_to_safetensors(src, dst, key="state_dict", overwrite=overwrite)
    output.emit(
        [
            {"item": "weights", "value": str(out)},
            {"item": "source", "value": str(src)},
            {"item": "tensors", "value": n},
        ],
        fmt.value,
        columns=["item", "value"],
        title="converted hpsv2",
    )
