"""The schema registry: one JSON Schema per event type and version, plus upcasters.

Schemas are files `schemas/<type>/v<N>.json`, loaded once, checked against the JSON Schema
meta-schema and compiled to Python code (fastjsonschema): validating an event costs a few
microseconds, about a twentieth of interpreting the schema on every call, so every published
and every received event is still checked. An upcaster turns the data of version N into
version N+1, so a consumer that meets an old event reads it in the newest shape it knows.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
_VERSION_FILE = re.compile(r"^v(\d+)\.json$")

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
_upcasters: dict[tuple[str, int], Upcaster] = {}


# The formats the schemas use that fastjsonschema does not know by itself.
_FORMATS = {"uuid": r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"}


class EventSchemaError(ValueError):
    """The data does not match the schema of its type and version (or there is none)."""


class _Schema:
    """One schema version: the document and its compiled validator."""

    def __init__(self, document: dict[str, Any]) -> None:
        Draft202012Validator.check_schema(document)
        self.document = document
        self.check: Callable[[Any], Any] = fastjsonschema.compile(document, formats=_FORMATS)


@functools.cache
def _validators() -> dict[tuple[str, int], _Schema]:
    validators: dict[tuple[str, int], _Schema] = {}
    for type_dir in sorted(p for p in SCHEMA_DIR.iterdir() if p.is_dir()):
        for file in type_dir.iterdir():
            match = _VERSION_FILE.match(file.name)
            if match:
                validators[(type_dir.name, int(match.group(1)))] = _Schema(json.loads(file.read_text()))
    return validators


def known_types() -> list[str]:
    return sorted({event_type for event_type, _ in _validators()})


def latest_version(event_type: str) -> int:
    versions = [version for (name, version) in _validators() if name == event_type]
    if not versions:
        raise EventSchemaError(f"No schema is registered for event type {event_type!r}")
    return max(versions)


def schema_for(event_type: str, version: int) -> dict[str, Any]:
    try:
        schema = _validators()[(event_type, version)].document
    except KeyError:
        raise EventSchemaError(f"No schema for {event_type} v{version}") from None
    assert isinstance(schema, Mapping)  # every schema file is a JSON object
    return dict(schema)


def validate(event_type: str, version: int, data: dict[str, Any]) -> None:
    validator = _validators().get((event_type, version))
    if validator is None:
        raise EventSchemaError(f"No schema for {event_type} v{version}")
    try:
        validator.check(data)
    except fastjsonschema.JsonSchemaValueException as error:
        path = "/".join(str(p) for p in error.path[1:]) or "(root)"
        raise EventSchemaError(f"{event_type} v{version} at {path}: {error.message}") from None


def register_upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    def decorator(func: Upcaster) -> Upcaster:
        _upcasters[(event_type, from_version)] = func
        return func

    return decorator


def upcast(event_type: str, version: int, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Bring `data` from `version` up to the newest registered schema version."""
    target = latest_version(event_type)
    while version < target:
        step = _upcasters.get((event_type, version))
        if step is None:
            raise EventSchemaError(f"No upcaster from {event_type} v{version} to v{version + 1}")
        data = step(dict(data))
        version += 1
    return version, data
