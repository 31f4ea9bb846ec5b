"""The plugin manager: entry-point loading with failures isolated.

First-party scorers live in `plugins/` and are listed under the "prefcli"
entry-point group in pyproject.toml, exactly as a third party lists its own.

Environment:
- PREFCLI_LOAD_PLUGINS: comma-separated entry-point names to load; unset loads
  all, an empty string loads none. Tests use it so installed third-party
  plugins never load.
- PREFCLI_STRICT_PLUGINS=1: a plugin that fails to import re-raises instead of
  costing one warning.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any

import pluggy

from prefcli import hookspecs
from prefcli.errors import UnknownScorerError
from prefcli.scorer import ScorerSpec

GROUP = "prefcli"
log = logging.getLogger(__name__)

pm = pluggy.PluginManager(GROUP)
pm.add_hookspecs(hookspecs)

_loaded = False
_scorers: dict[str, ScorerSpec] = {}
_aliases: dict[str, str] = {}
failures: dict[str, str] = {}


class PluginLoadWarning(UserWarning):
    pass


def _allowed() -> set[str] | None:
    raw = os.environ.get("PREFCLI_LOAD_PLUGINS")
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


def _strict() -> bool:
    return os.environ.get("PREFCLI_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


def load_plugins() -> None:
    """Load entry-point plugins once; each failure is one warning naming the plugin."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    allowed = _allowed()
    for ep in metadata.entry_points(group=GROUP):
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as e:  # a broken plugin must never cost the CLI
            if _strict():
                raise
            failures[ep.name] = f"{type(e).__name__}: {e}"
            warnings.warn(
                f"prefcli plugin {ep.name!r} failed to load and was skipped: {e}", PluginLoadWarning, stacklevel=2
            )
    _collect()


def _register(spec: ScorerSpec, plugin_name: str = "") -> None:
    if spec.name in _scorers and _scorers[spec.name].factory != spec.factory:
        warnings.warn(
            f"scorer {spec.name!r} registered twice; keeping the first ({_scorers[spec.name].plugin})",
            PluginLoadWarning,
            stacklevel=3,
        )
        return
    if plugin_name and not spec.plugin:
        spec = dataclasses.replace(spec, plugin=plugin_name)  # a new spec: the plugin's own is never changed
    _scorers[spec.name] = spec
    for alias in spec.aliases:
        _aliases[alias] = spec.name


def _unmarked(plugin: object) -> bool:
    """A `register_scorers` defined without `@hookimpl`: pluggy does not collect it, and we say so."""
    impl = getattr(plugin, "register_scorers", None)
    return callable(impl) and not hasattr(impl, f"{GROUP}_impl")


def _collect() -> None:
    _scorers.clear()
    _aliases.clear()
    # Only implementations marked with @hookimpl are hooks; each is called on
    # its own so that one failing plugin costs a warning, not the others.
    for impl in reversed(pm.hook.register_scorers.get_hookimpls()):  # registration order
        name = impl.plugin_name
        try:
            impl.function(register=lambda spec, _n=name: _register(spec, _n))
        except Exception as e:
            if _strict():
                raise
            failures[name] = f"{type(e).__name__}: {e}"
            warnings.warn(
                f"prefcli plugin {name!r} failed in register_scorers and was skipped: {e}",
                PluginLoadWarning,
                stacklevel=2,
            )
    for plugin in pm.get_plugins():
        if plugin is not hookspecs and _unmarked(plugin):
            name = pm.get_name(plugin) or getattr(plugin, "__name__", "")
            log.warning("prefcli plugin %r defines register_scorers without @hookimpl; it was not registered", name)
            warnings.warn(
                f"prefcli plugin {name!r} defines register_scorers without @hookimpl (from prefcli.hookspecs); "
                f"it was not registered",
                PluginLoadWarning,
                stacklevel=2,
            )
    from prefcli.probe import probe_specs  # probes derive from registered embedding scorers

    for spec in probe_specs(list(_scorers.values())):
        if spec.name not in _scorers:
            _register(spec, spec.plugin)


def register_plugin(plugin: object, name: str | None = None) -> None:
    """Register an in-process plugin object (tests, notebooks) and refresh the registry."""
    load_plugins()
    pm.register(plugin, name=name)
    _collect()


def unregister_plugin(plugin: object = None, name: str | None = None) -> None:
    pm.unregister(plugin=plugin, name=name)
    _collect()


def scorers() -> dict[str, ScorerSpec]:
    load_plugins()
    return dict(_scorers)


def get_scorer_spec(name: str) -> ScorerSpec:
    load_plugins()
    key = _aliases.get(name, name)
    if key in _scorers:
        return _scorers[key]
    known = sorted(set(_scorers) | set(_aliases))
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    failed = f" (plugins that failed to load: {', '.join(sorted(failures))})" if failures else ""
    raise UnknownScorerError(f"unknown scorer {name!r}.{hint} Known: {', '.join(known) or 'none'}{failed}")


def scoped_options(pairs: Mapping[str, Any], scorers: Sequence[str], among: str) -> dict[str, dict[str, Any]]:
    """`-o SCORER.KEY VALUE` → {scorer: {KEY: VALUE}} for a command that loads several scorers
    (prefcli.options.scoped, with each scorer's declared options read from its registered spec)."""
    from prefcli.options import scoped

    return scoped(pairs, scorers, declared=lambda s: get_scorer_spec(s).options.names(), among=among)


def load_scorer(name: str, weights: str | None = None, **kwargs):
    """Build a registered scorer: `device` (default auto), `dtype`, `options` (a dict or Options) and/or option keywords."""
    return get_scorer_spec(name).load(weights=weights, **kwargs)


def _reset_for_tests() -> None:  # pragma: no cover - test helper
    global _loaded
    for p in list(pm.get_plugins()):
        if p is not hookspecs:
            pm.unregister(p)
    _loaded = False
    failures.clear()
    _scorers.clear()
    _aliases.clear()
