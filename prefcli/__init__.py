"""prefcli: personalized image-preference prediction.

Kept import-light on purpose: `prefcli --help` must not pull in torch. The
Python API (`prefcli.load_scorer`, `prefcli.rank`; see docs/api.md) is
imported on first use.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "load_scorer", "rank"]


def __getattr__(name: str):
    if name in ("load_scorer", "rank"):
        from prefcli import api

        return getattr(api, name)
    raise AttributeError(f"module 'prefcli' has no attribute {name!r}")
