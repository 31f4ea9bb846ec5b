"""Convert an HPS checkpoint that `torch.load(weights_only=True)` refuses into safetensors, once.

The command is ``prefcli convert hpsv2 SRC DST.safetensors``; this module
keeps the old entry point (``python -m prefcli_hpsv2.convert SRC DST``) as
the same call. Both read the checkpoint through prefcli's restricted loader
(:func:`prefcli.safe_load.torch_load`): the pickled objects beside the
weights (training arguments, ...) are never imported or run, a file that
would call code while loading is refused, and only the tensors under
`state_dict` are written.
"""

from __future__ import annotations

import sys
from pathlib import Path

from prefcli.errors import WeightsError

CHECKPOINT_KEY = "state_dict"


def convert_checkpoint(src: str | Path, dst: str | Path, *, overwrite: bool = False) -> Path:
    """`prefcli convert hpsv2`: the tensors under `state_dict` of `src`, as safetensors at `dst`."""
    from prefcli.convert import checkpoint_to_safetensors

    return checkpoint_to_safetensors(src, dst, key=CHECKPOINT_KEY, overwrite=overwrite)[0]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if args and args[0] in ("-h", "--help") else 2
    try:
        out = convert_checkpoint(args[0], args[1])
    except WeightsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
