"""Validate a prefcli JSON document against its command's schema in docs/schemas/ (with the jsonschema package)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "schemas"


def schema_file(command: str) -> Path:
    return SCHEMAS / f"{command.replace(' ', '-')}.schema.json"


def _registry():
    from referencing import Registry, Resource

    resources = []
    for p in sorted(SCHEMAS.glob("*.schema.json")):
        doc = json.loads(p.read_text())
        resources.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources)


def validate(doc: Any, command: str | None = None) -> Any:
    """Raise jsonschema.ValidationError unless `doc` is a valid document of `command` (default: its own "command")."""
    import jsonschema

    if command is None:
        if not isinstance(doc, dict) or "command" not in doc:
            raise jsonschema.ValidationError(f'not a prefcli JSON document (a {type(doc).__name__} without "command")')
        command = doc["command"]
    schema = json.loads(schema_file(command).read_text())
    jsonschema.Draft202012Validator(schema, registry=_registry()).validate(doc)
    return doc


def validate_text(text: str, command: str | None = None) -> dict:
    """The one document in a command's stdout, validated."""
    return validate(json.loads(text[text.index("{") :]), command)
