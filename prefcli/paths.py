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
        warnings.warn(
            f"{DEPRECATED_ENV} is deprecated; set {CACHE_ENV} (the cache root: urls/, harness/, worlds/ under it)",
            DeprecationWarning,
            stacklevel=3,
        )
    return Path(old).expanduser()


def cache_subdir(name: str) -> Path:
    """One part of the cache (see the module docstring), honouring the deprecated alias."""
    if name not in SUBDIRS:
        raise ValueError(f"unknown cache part {name!r}; one of {', '.join(SUBDIRS)}")
    old = _deprecated() if name in ("harness", "worlds") else None
    if old is not None:
        return old if name == "harness" else old / "worlds"
    return cache_root() / name


def inside_root(
    root: str | os.PathLike,
    name: str | os.PathLike,
    what: str = "path",
    *,
    error: type[Exception] | None = None,
    root_name: str = "",
) -> Path:
    """`name` (relative to `root`, as a file or a client gave it) resolved, or an error when it leaves `root`.

    Every importer and dataset reader opens files through this: the name may not be
    absolute nor climb with `..`, and once every symlink on the way is resolved the
    file must still lie under the resolved `root` (a link inside the root that points
    elsewhere is refused, one that stays inside is followed). The resolved path is
    returned, so what is opened is what was checked. `root_name` says what the root is
    in messages ("the image root").
    """
    if error is None:
        from prefcli.errors import DataError as error
    if not isinstance(name, (str, os.PathLike)) or not str(name).strip() or "\0" in str(name):
        raise error(f"{what} is not a file path ({name!r})")
    rel = Path(name)
    if rel.is_absolute() or rel.drive or ".." in rel.parts:
        raise error(
            f"{what} {str(name)!r} leaves {root_name or 'its root'} {root} (absolute names and '..' are refused)"
        )
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, rel))
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise error(
            f"{what} {str(name)!r} is a link that leads outside {root_name or 'its root'} {root} (to {real}); refused"
        )
    return Path(real)


def is_inside(root: str | os.PathLike, path: str | os.PathLike) -> bool:
    """Whether `path`, all links resolved, lies under `root` (resolved)."""
    real_root, real = os.path.realpath(root), os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)
