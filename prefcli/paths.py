"""Where prefcli keeps what it can recompute: one cache root for weights, scores and worlds.

The root is ``$PREFCLI_CACHE``, else ``$XDG_CACHE_HOME/prefcli``, else
``~/.cache/prefcli``. Under it:

- ``urls/``: weights downloaded from https URLs (hub weights stay in the
  Hugging Face cache, ``$HF_HOME``);
- ``harness/``: the score and embedding cache of eval, bench and rank;
- ``worlds/``: synthetic worlds and their datasets built by training configs.

``PREFCLI_CACHE_DIR``, the harness's old variable, still works as a
deprecated alias: when it is set and ``PREFCLI_CACHE`` is not, scores stay in
``$PREFCLI_CACHE_DIR`` itself and worlds in ``$PREFCLI_CACHE_DIR/worlds``,
where earlier versions put them, with one warning.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

CACHE_ENV = "PREFCLI_CACHE"
DEPRECATED_ENV = "PREFCLI_CACHE_DIR"
SUBDIRS = ("urls", "harness", "worlds")
_warned = False


def cache_root() -> Path:
    """$PREFCLI_CACHE, else $XDG_CACHE_HOME/prefcli, else ~/.cache/prefcli."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "prefcli"
    return Path.home() / ".cache" / "prefcli"


def _deprecated() -> Path | None:
    global _warned
    old = os.environ.get(DEPRECATED_ENV)
    if not old or os.environ.get(CACHE_ENV):
        return None
    if not _warned:
        _warned = True
        warnings.warn(f"{DEPRECATED_ENV} is deprecated; set {CACHE_ENV} (the cache root: urls/, harness/, worlds/ under it)",
                      DeprecationWarning, stacklevel=3)
    return Path(old).expanduser()


def cache_subdir(name: str) -> Path:
    """One part of the cache (see the module docstring), honouring the deprecated alias."""
    if name not in SUBDIRS:
        raise ValueError(f"unknown cache part {name!r}; one of {', '.join(SUBDIRS)}")
    old = _deprecated() if name in ("harness", "worlds") else None
    if old is not None:
        return old if name == "harness" else old / "worlds"
    return cache_root() / name
