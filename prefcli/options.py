"""Typed scorer options: what a scorer can be told, declared once, checked at the boundary.

Each scorer declares a frozen dataclass that subclasses :class:`Options`;
every field is made with :func:`option` (default, one-line help, and
optionally the allowed values, a parser, whether it names weights, whether it
changes scores). The same class serves the CLI (`-o KEY VALUE`, values
arrive as strings), the Python API (values arrive typed), `prefcli scorers
NAME` (the table of options) and the cache identity (the options that change
scores are part of it). simonw/llm's `Options` is the model.

Nothing heavy is imported here: plugins declare their options in their
`__init__` module, which `prefcli --help` loads.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from prefcli.errors import OptionError

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}
_NONE = {"none", "null", ""}


def option(
    default: Any,
    help: str,
    *,
    choices: Sequence[Any] | None = None,
    parse: Callable[[Any], Any] | None = None,
    weights: bool = False,
    scores: bool = True,
    min: float | None = None,
) -> Any:
    """One typed option.

    `choices`: the allowed values (an error lists them). `parse`: turns a raw
    value into the stored one, raising ValueError with a reason (it runs after
    type coercion). `weights`: the value is a weights spec (hub id, local
    path, URL) resolved by `prefcli.weights`, and identified by the content
    of what it names. `scores`: False for options that cannot change a score
    (batch size, offline), so they stay out of the cache key. `min`: a lower
    bound for numbers.
    """
    meta = {
        "help": help,
        "choices": tuple(choices) if choices is not None else None,
        "parse": parse,
        "weights": weights,
        "scores": scores,
        "min": min,
    }
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class OptionInfo:
    """One option as `prefcli scorers NAME` shows it."""

    name: str
    type: str
    default: Any
    help: str
    choices: tuple | None
    weights: bool
    scores: bool

    def as_row(self) -> dict:
        return {
            "option": self.name,
            "type": self.type,
            "default": self.default,
            "help": self.help,
            "choices": ", ".join(str(c) for c in self.choices) if self.choices else "",
            "weights": self.weights,
            "changes_scores": self.scores,
        }


def _type_name(tp: Any) -> str:
    inner, optional = _unwrap_optional(tp)
    name = getattr(inner, "__name__", str(inner))
    return f"{name} or none" if optional else name


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _coerce(value: Any, tp: Any) -> Any:
    """A raw value (a CLI string, or a Python value) as the declared type; ValueError says why not."""
    inner, optional = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in _NONE):
        if optional:
            return None
        raise ValueError("a value is required")
    if inner is bool:
        if isinstance(value, bool):
            return value
        s = str(value).strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise ValueError("expected true or false")
    if inner is int:
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).strip())
        except ValueError:
            raise ValueError("expected an integer") from None
    if inner is float:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError("expected a number") from None
    if inner is str:
        return str(value)
    return value


@dataclass(frozen=True)
class Options:
    """Options every scorer understands. Subclasses add their own fields with `option(...)`."""

    batch_size: int = option(
        16, "Images per forward pass (memory vs speed; scores do not change).", scores=False, min=1
    )

    # -- description -----------------------------------------------------------
    @classmethod
    def _hints(cls) -> dict[str, Any]:
        return typing.get_type_hints(cls)

    @classmethod
    def info(cls) -> list[OptionInfo]:
        hints = cls._hints()
        out = []
        for f in dataclasses.fields(cls):
            m = f.metadata
            out.append(
                OptionInfo(
                    f.name,
                    _type_name(hints.get(f.name, str)),
                    f.default,
                    m.get("help", ""),
                    m.get("choices"),
                    bool(m.get("weights")),
                    bool(m.get("scores", True)),
                )
            )
        return out

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def weights_options(cls) -> list[str]:
        """Options whose values are weights specs (resolved by prefcli.weights)."""
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get("weights")]

    # -- validation --------------------------------------------------------------
    @classmethod
    def parse(cls, values: Mapping[str, Any] | None = None, *, scorer: str = "") -> Options:
        """Validated options from raw values (strings from the CLI or typed values).

        An unknown name, a value of the wrong type, a value outside `choices`
        or below `min` is an OptionError naming the scorer, the option and
        what is allowed.
        """
        values = dict(values or {})
        who = f"scorer {scorer}: " if scorer else ""
        known = {f.name: f for f in dataclasses.fields(cls)}
        hints = cls._hints()
        kwargs: dict[str, Any] = {}
        for key, raw in values.items():
            name = str(key).strip().replace("-", "_")
            f = known.get(name)
            if f is None:
                close = difflib.get_close_matches(name, list(known), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                listing = ", ".join(sorted(known)) or "none"
                raise OptionError(
                    f"{who}unknown option {key!r}.{hint} Its options: {listing} (see `prefcli scorers {scorer or 'NAME'}`)"
                )
            m = f.metadata
            try:
                value = _coerce(raw, hints.get(name, str))
                if m.get("parse") is not None and value is not None:
                    value = m["parse"](value)
            except ValueError as e:
                if m.get(
                    "choices"
                ):  # the allowed values say it all, once (a parser's own reason would list them again)
                    raise OptionError(
                        f"{who}option {name} = {raw!r} is not allowed; allowed: {', '.join(str(c) for c in m['choices'])}"
                    ) from None
                raise OptionError(f"{who}option {name} = {raw!r}: {e}") from None
            if m.get("choices") is not None and value is not None and value not in m["choices"]:
                raise OptionError(
                    f"{who}option {name} = {raw!r} is not allowed; allowed: {', '.join(str(c) for c in m['choices'])}"
                )
            if m.get("min") is not None and value is not None and value < m["min"]:
                raise OptionError(f"{who}option {name} = {raw!r}: must be at least {m['min']}")
            kwargs[name] = value
        return cls(**kwargs)

    # -- use -----------------------------------------------------------------------
    def as_kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def changed(self) -> dict[str, Any]:
        """The options set to something other than their default."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) != f.default}

    def score_affecting(self) -> dict[str, Any]:
        """Every option that can change a score, with its value (defaults included: a changed default must not hit old entries)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("scores", True)}


def extend(base: type[Options], name: str, **fields: tuple[Any, Any]) -> type[Options]:
    """A new options class: `base`'s options plus `fields` ({name: (type, option(...))})."""
    return dataclasses.make_dataclass(name, [(k, tp, f) for k, (tp, f) in fields.items()], bases=(base,), frozen=True)


def scoped(
    pairs: Mapping[str, Any],
    scorers: Sequence[str],
    *,
    declared: Callable[[str], Collection[str]],
    among: str = "the scorers here",
) -> dict[str, dict[str, Any]]:
    """`-o SCORER.KEY VALUE` → {scorer: {KEY: VALUE}}; a bare KEY goes to every scorer in `scorers` that declares it.

    `declared(scorer)` names the options a scorer declares; it is asked only for a bare KEY,
    and comes from the caller (the plugin registry) so that this module stays below it.

    The one reading of `-o` where a command loads several scorers (bench, generate, bench generate).
    A scorer not in `scorers`, or a bare KEY none of them has, is an OptionError (a typo must not be
    ignored silently); `among` names the scorers in that message. Per-scorer settings win over bare ones
    whatever their order on the command line.
    """
    out: dict[str, dict[str, Any]] = {s: {} for s in scorers}
    listing = ", ".join(scorers) or "none"
    for key, value in pairs.items():
        name, dot, opt = str(key).rpartition(".")
        if dot:
            if name not in out:
                raise OptionError(f"-o {key}: {name!r} is not one of {among} ({listing}); write -o SCORER.KEY VALUE")
            continue
        takers = [s for s in scorers if str(key).replace("-", "_") in declared(s)]
        if not takers:
            raise OptionError(f"-o {key}: none of {among} ({listing}) has this option; see `prefcli scorers NAME`")
        for s in takers:
            out[s][key] = value
    for key, value in pairs.items():
        name, dot, opt = str(key).rpartition(".")
        if dot:
            out[name][opt] = value
    return {s: o for s, o in out.items() if o}


def parse_pairs(pairs: Sequence[Sequence[str]] | None) -> dict[str, str]:
    """[(KEY, VALUE), ...] from `-o KEY VALUE` into a dict; a repeated key keeps the last value."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, value = pair
        out[str(key)] = value
    return out


__all__ = ["Options", "OptionInfo", "option", "extend", "parse_pairs", "scoped", "Optional"]
