"""The one way prefcli reads a JSON file (or a JSON string it did not write itself).

Python's ``json`` recurses once per nesting level: a file holding
``[[[[...]]]]`` 100,000 deep ends in ``RecursionError``, and a 3 GB file, a
FIFO or ``/dev/zero`` is read whole (or forever) before anything is checked.
:func:`read_json` checks the file's kind and size from the file system first,
then its bytes (UTF-8, a BOM allowed), then its nesting depth on a skeleton
of the text with the strings taken out (bytes operations that run in C,
before the parser recurses; above `SCAN_LIMIT` characters the parser's own
guard against deep recursion is caught instead), then parses.
bench/bench_jsonio.py measures what this costs over a bare ``json.loads``. Every failure is one error naming the file
and the reason, of the class the caller asks for (``DataError`` by default,
``ConfigError`` for configs, ...), which the CLI prints as one line.

No file prefcli reads legitimately nests deeper than a few levels; the depth
limit leaves ample room while staying far below the interpreter's recursion
limit.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import stat
from pathlib import Path

from prefcli.errors import DataError

MAX_DEPTH = 64
SCAN_LIMIT = 16 * 1024 * 1024
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
MAX_BYTES_ENV = "PREFCLI_MAX_JSON_BYTES"

_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def max_bytes() -> int:
    raw = os.environ.get(MAX_BYTES_ENV)
    if raw:
        try:
            value = int(raw)
            if value > 0:
                return value
        except ValueError:
            pass
    return DEFAULT_MAX_BYTES


_ESCAPE = re.compile(rb"\\.", re.S)
_NOT_BRACKET_BYTES = bytes(b for b in range(256) if b not in b"[]{}")


def nesting_depth(text: str | bytes) -> int:
    """How deeply arrays and objects nest in `text` (brackets inside strings do not count)."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if b"\\" in data:
        data = _ESCAPE.sub(b"", data)  # an escaped quote does not end a string
    outside = b"".join(data.split(b'"')[::2])  # what lies between strings (C-speed bytes work)
    skeleton = outside.translate(None, _NOT_BRACKET_BYTES)
    if not skeleton:
        return 0
    return max(0, max(itertools.accumulate(map(_STEP.__getitem__, skeleton))))


def _size_mb(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n} bytes"


def read_text(path: str | os.PathLike, *, error: type[Exception] = DataError, limit: int | None = None) -> str:
    """The UTF-8 text of a regular file no larger than `limit`, or `error` naming the file and the reason."""
    path = Path(path)
    limit = max_bytes() if limit is None else limit
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as e:
        raise error(f"{path}: unreadable ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{path}: is a folder, not a JSON file")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: not a regular file (a device, a pipe or a socket); refused")
    if st.st_size > limit:
        raise error(
            f"{path}: {_size_mb(st.st_size)}, more than the {_size_mb(limit)} a JSON file may have here "
            f"(raise {MAX_BYTES_ENV} if it is genuine)"
        )
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise error(f"{path}: unreadable ({e.strerror or e})") from None
    if len(data) > limit:  # grew while we looked
        raise error(f"{path}: more than the {_size_mb(limit)} a JSON file may have here")
    return decode(data, str(path), error=error)


def decode(data: bytes, source: str, *, error: type[Exception] = DataError) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise error(f"{source}: unreadable, not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None


def loads(text: str | bytes, source: str, *, error: type[Exception] = DataError, max_depth: int = MAX_DEPTH):
    """Parse JSON text that came from `source` (a file name, or e.g. "score cache row 12")."""
    if isinstance(text, (bytes, bytearray)):
        text = decode(bytes(text), source, error=error)
    depth = nesting_depth(text) if len(text) <= SCAN_LIMIT else 0
    if depth > max_depth:
        raise error(f"{source}: JSON nested {depth} levels deep, more than the {max_depth} allowed; refused")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{source}: unreadable, invalid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:  # only above SCAN_LIMIT: smaller texts were measured first
        raise error(f"{source}: JSON nested too deeply; refused") from None
    except ValueError as e:  # e.g. an integer with more digits than Python converts
        raise error(f"{source}: unreadable, invalid JSON ({e})") from None


def read_json(
    path: str | os.PathLike,
    *,
    error: type[Exception] = DataError,
    expect: type | tuple[type, ...] | None = None,
    what: str = "JSON",
    max_depth: int = MAX_DEPTH,
    limit: int | None = None,
):
    """The parsed content of the JSON file at `path`; with `expect`, also its top-level type checked."""
    value = loads(read_text(path, error=error, limit=limit), str(path), error=error, max_depth=max_depth)
    if expect is not None:
        check_type(value, expect, str(path), what, error=error)
    return value


def read_json_lines(
    path: str | os.PathLike, *, error: type[Exception] = DataError, max_depth: int = MAX_DEPTH, limit: int | None = None
) -> list:
    """One JSON value per non-empty line (JSON Lines); an error names the file and the line."""
    text = read_text(path, error=error, limit=limit)
    return [
        loads(line, f"{path} line {i}", error=error, max_depth=max_depth)
        for i, line in enumerate(text.splitlines(), 1)
        if line.strip()
    ]


_NAMES = {
    dict: "a JSON object",
    list: "a JSON list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


def type_name(value: object) -> str:
    return _NAMES.get(type(value), type(value).__name__)


def check_type(
    value: object, expect: type | tuple[type, ...], source: str, what: str, *, error: type[Exception] = DataError
):
    """`value` when it is of `expect` (bool is not a number here), else `error` saying what it is instead."""
    kinds = expect if isinstance(expect, tuple) else (expect,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        wanted = " or ".join(_NAMES.get(k, k.__name__) for k in kinds)
        raise error(f"{source}: {what} must be {wanted}, not {type_name(value)}")
    return value
