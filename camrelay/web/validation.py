"""Checking request bodies and query values against the JSON Schemas we publish.

The API's schemas use a small part of JSON Schema 2020-12 (listed in :data:`CHECKED` and
:data:`NOTES`), and this module checks exactly that part, with the standard's meaning:
``type`` (an integer is a number without a fraction, ``true`` is not a number),
``enum``, string lengths in code points, ``pattern`` searched (not anchored), numeric
bounds and ``multipleOf``, ``properties``/``required``/``additionalProperties``,
``items``/``minItems``/``maxItems`` and ``anyOf``.  ``format`` is an annotation, as in
2020-12 by default: the handlers parse times themselves.  A schema with any other
keyword is refused when the route is declared, so a new rule cannot be silently
unchecked.  (A general validator, jsonschema with its reference resolver and Rust
helpers, cost every server process about 3 MB for this.)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

CHECKED = frozenset({
    "type", "enum", "minLength", "maxLength", "pattern", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "properties", "required",
    "additionalProperties", "items", "minItems", "maxItems", "anyOf"})
NOTES = frozenset({"description", "format", "title", "writeOnly", "readOnly", "default",
                   "examples", "deprecated"})


@dataclass(frozen=True)
class Issue:
    """One broken rule: where (``path``, keys and indexes from the root), which rule and
    its value in the schema.  Never the offending value itself (it may be a password)."""

    path: tuple[str | int, ...]
    rule: str
    value: Any
    extra: str | None = None  # the unknown property or the missing required one


_TYPES: dict[str, Any] = {
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
}


class SchemaValidator:
    """A compiled schema (``$ref`` already inlined).  ``ValueError`` at construction for a
    keyword this module does not check (``TypeError`` for a schema that is not an object)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._patterns: dict[str, re.Pattern[str]] = {}
        self._compile(schema)

    def _compile(self, schema: Any) -> None:
        if not isinstance(schema, dict):
            raise TypeError(f"a schema must be an object, not {type(schema).__name__}")
        unknown = set(schema) - CHECKED - NOTES
        if unknown:
            raise ValueError(f"schema keyword(s) not checked here: {sorted(unknown)}")
        kinds = schema.get("type", [])
        for kind in [kinds] if isinstance(kinds, str) else kinds:
            if kind not in _TYPES:
                raise ValueError(f"unknown type {kind!r}")
        if "pattern" in schema:
            self._patterns[schema["pattern"]] = re.compile(schema["pattern"])
        for sub in schema.get("properties", {}).values():
            self._compile(sub)
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                self._compile(schema[key])
        for sub in schema.get("anyOf", []):
            self._compile(sub)

    def first_issue(self, instance: Any) -> Issue | None:
        """The first broken rule, in the order of the instance's paths."""
        return min(self.issues(instance), key=lambda i: tuple(map(str, i.path)), default=None)

    def issues(self, instance: Any) -> Iterator[Issue]:
        return self._check(self.schema, instance, ())

    def _check(self, schema: dict[str, Any], value: Any, path: tuple[str | int, ...]
               ) -> Iterator[Issue]:
        if "type" in schema:
            kinds = schema["type"]
            if not any(_TYPES[k](value) for k in ([kinds] if isinstance(kinds, str) else kinds)):
                yield Issue(path, "type", kinds)
                return  # the other rules only make sense for the right type
        if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
            yield Issue(path, "enum", schema["enum"])
        if "anyOf" in schema:
            branches = [list(self._check(sub, value, path)) for sub in schema["anyOf"]]
            if all(branches):
                yield Issue(path, "anyOf", schema["anyOf"])
        if isinstance(value, str):
            yield from self._string(schema, value, path)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield from _number(schema, value, path)
        elif isinstance(value, list):
            if "minItems" in schema and len(value) < schema["minItems"]:
                yield Issue(path, "minItems", schema["minItems"])
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                yield Issue(path, "maxItems", schema["maxItems"])
            if isinstance(schema.get("items"), dict):
                for index, item in enumerate(value):
                    yield from self._check(schema["items"], item, (*path, index))
        elif isinstance(value, dict):
            yield from self._object(schema, value, path)

    def _string(self, schema: dict[str, Any], value: str, path: tuple[str | int, ...]
                ) -> Iterator[Issue]:
        if "minLength" in schema and len(value) < schema["minLength"]:
            yield Issue(path, "minLength", schema["minLength"])
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            yield Issue(path, "maxLength", schema["maxLength"])
        if "pattern" in schema and not self._patterns[schema["pattern"]].search(value):
            yield Issue(path, "pattern", schema["pattern"])

    def _object(self, schema: dict[str, Any], value: dict[str, Any],
                path: tuple[str | int, ...]) -> Iterator[Issue]:
        properties: dict[str, Any] = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                yield Issue(path, "required", schema["required"], extra=name)
        for name, sub in properties.items():
            if name in value:
                yield from self._check(sub, value[name], (*path, name))
        extra = schema.get("additionalProperties", True)
        for name in sorted(set(value) - set(properties)):
            if extra is False:
                yield Issue(path, "additionalProperties", False, extra=name)
            elif isinstance(extra, dict):
                yield from self._check(extra, value[name], (*path, name))


def _number(schema: dict[str, Any], value: float, path: tuple[str | int, ...]
            ) -> Iterator[Issue]:
    if "minimum" in schema and value < schema["minimum"]:
        yield Issue(path, "minimum", schema["minimum"])
    if "maximum" in schema and value > schema["maximum"]:
        yield Issue(path, "maximum", schema["maximum"])
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        yield Issue(path, "exclusiveMinimum", schema["exclusiveMinimum"])
    if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
        yield Issue(path, "exclusiveMaximum", schema["exclusiveMaximum"])
    if "multipleOf" in schema and not _multiple(value, schema["multipleOf"]):
        yield Issue(path, "multipleOf", schema["multipleOf"])


def _multiple(value: float, step: float) -> bool:
    if isinstance(value, int) and isinstance(step, int):
        return value % step == 0
    quotient = value / step
    return math.isfinite(quotient) and quotient == int(quotient)


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0``, but ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)
