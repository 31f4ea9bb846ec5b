"""Convert an HPS checkpoint that `torch.load(weights_only=True)` refuses into safetensors, once.

prefcli never unpickles arbitrary objects while scoring. A checkpoint that
carries pickled Python objects next to its weights (training arguments,
optimizer classes, ...) must be converted explicitly, by someone who trusts
the file:

    python -m prefcli_hpsv2.convert HPS_v2.1_compressed.pt hps_v2.1.safetensors

The output holds only the tensors under `state_dict`, and loads with
`--weights hps_v2.1.safetensors` (pass the matching `version` only for the
record; the file itself decides the weights).
"""

from __future__ import annotations

import sys
from pathlib import Path

from prefcli.errors import WeightsError

CHECKPOINT_KEY = "state_dict"


def convert_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Read `src` with full unpickling (trusted files only) and write its state dict to `dst` as safetensors."""
    import torch

    from prefcli import weights as W

    src, dst = Path(src), Path(dst)
    if dst.suffix.lower() != ".safetensors":
        raise WeightsError(f"{dst}: the converted checkpoint must be a .safetensors file")
    if not src.is_file():
        raise WeightsError(f"{src}: checkpoint not found")
    # The one deliberate full unpickle: the user asked for it, on a file they trust.
    obj = torch.load(str(src), map_location="cpu", weights_only=False)
    state = obj.get(CHECKPOINT_KEY, obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict):
        raise WeightsError(f"{src}: expected a dict with a {CHECKPOINT_KEY!r} entry, found {type(obj).__name__}")
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    dropped = sorted(str(k) for k in state if k not in tensors)
    if dropped:
        raise WeightsError(f"{src}: {CHECKPOINT_KEY!r} holds non-tensor entries ({', '.join(dropped[:5])}); not an HPS checkpoint")
    W.save_state_dict(tensors, dst, metadata={"converted_from": src.name})
    return dst


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if args and args[0] in ("-h", "--help") else 2
    try:
        out = convert_checkpoint(args[0], args[1])
    except WeightsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
