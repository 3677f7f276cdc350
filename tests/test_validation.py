"""The request validator (camrelay.web.validation) against jsonschema, the reference
implementation of JSON Schema 2020-12: for every body and query schema the live API
publishes, values generated near the schema (valid ones, values just past each bound,
wrong types, unknown fields) are accepted or refused alike, and a refusal names a place
and a rule jsonschema also reports there."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from camrelay.web.keys import OPENAPI_KEY
from camrelay.web.openapi import _inline, _schema_error
from camrelay.web.validation import Issue, SchemaValidator

EXAMPLES = 60


@pytest.fixture
def backend() -> str:
    return "sqlite"


def published_schemas(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    components = document.get("components", {}).get("schemas", {})
    out: list[tuple[str, dict[str, Any]]] = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            for param in op.get("parameters", []):
                if param.get("in") == "query":
                    out.append((f"{where} ?{param['name']}", _inline(param["schema"], components)))
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body and "schema" in body:
                out.append((f"{where} body", _inline(body["schema"], components)))
    return out


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=6))
_anything = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=6)


def near(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values around what ``schema`` accepts: inside, on and just past every bound."""
    options: list[st.SearchStrategy[Any]] = [_anything]
    if "enum" in schema:
        options.append(st.sampled_from(schema["enum"]))
    for branch in schema.get("anyOf", []):
        options.append(near(branch))
    if "anyOf" in schema:  # values of a kind perhaps no branch takes
        options.append(st.sampled_from([1, 1.5, True, [], {}]))
    kinds = schema.get("type", [])
    for kind in [kinds] if isinstance(kinds, str) else kinds:
        options.append(_near_kind(kind, schema))
    return st.one_of(options)


def _near_kind(kind: str, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if kind == "string":
        low, high = schema.get("minLength", 0), schema.get("maxLength", 40)
        texts = [st.text(st.characters(codec="utf-8"), min_size=max(0, low - 1),
                         max_size=min(high + 1, 300)),
                 st.sampled_from([high, high + 1]).map(lambda n: "a" * n)]
        if "pattern" in schema:
            texts.append(st.from_regex(schema["pattern"]).filter(lambda s: len(s) <= high + 1))
        return st.one_of(texts)
    if kind in ("integer", "number"):
        bounds = [schema[k] for k in ("minimum", "maximum", "exclusiveMinimum",
                                      "exclusiveMaximum") if k in schema]
        edges = [b + d for b in bounds for d in (-1, 0, 1)]
        step = schema.get("multipleOf", 1)
        numbers: list[st.SearchStrategy[Any]] = [
            st.integers(-10**6, 10**6).map(lambda n: n * step), st.integers(-10**6, 10**6)]
        if edges:
            numbers.append(st.sampled_from(edges))
        if kind == "number" or edges:
            numbers.append(st.sampled_from([b + 0.5 for b in bounds] or [0.5]))
            numbers.append(st.floats(allow_nan=False, allow_infinity=False))
        return st.one_of(numbers)
    if kind == "array":
        items = schema.get("items")
        return st.lists(near(items) if isinstance(items, dict) else _anything,
                        max_size=min(schema.get("maxItems", 4) + 1, 6))
    if kind == "object":
        props: dict[str, Any] = schema.get("properties", {})
        return st.builds(
            lambda known, extra: {**extra, **known},
            st.fixed_dictionaries({}, optional={k: near(v) for k, v in props.items()}),
            st.dictionaries(st.sampled_from(["x", "extra", "id2"]), _anything, max_size=1)
            if schema.get("additionalProperties", True) is not True
            else st.just({}))
    if kind == "boolean":
        return st.booleans()
    return st.none()


def compare(where: str, schema: dict[str, Any], kinds_seen: set[str]) -> None:
    ours, reference = SchemaValidator(schema), Draft202012Validator(schema)

    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(near(schema))
    def agree(value: Any) -> None:
        issue = ours.first_issue(value)
        errors = list(reference.iter_errors(value))
        assert (issue is None) == (not errors), (where, value, issue, errors)
        # every rule we report broken, jsonschema reports broken at the same place
        reported = {(tuple(e.absolute_path), e.validator) for e in errors}
        for one in ours.issues(value):
            kinds_seen.add(one.rule)
            assert (one.path, one.rule) in reported, (where, value, one, reported)

    agree()


async def test_every_published_schema_is_checked_as_jsonschema_checks_it(
        client: TestClient[Any, Any]) -> None:
    app = client.server.app
    assert app is not None
    schemas = published_schemas(app[OPENAPI_KEY])
    assert len(schemas) > 40  # bodies and query parameters of the whole API
    kinds_seen: set[str] = set()
    for where, schema in schemas:
        compare(where, schema, kinds_seen)
    # the generator reached the rules the API relies on
    assert {"type", "required", "additionalProperties", "maxLength", "minLength", "pattern",
            "enum", "minimum", "maximum", "multipleOf", "anyOf"} <= kinds_seen


@pytest.mark.parametrize("schema", [
    {"type": "string", "oneOf": [{"type": "string"}]},
    {"type": "object", "properties": {"a": {"type": "string", "uniqueItems": True}}},
    {"type": "array", "items": {"type": "strnig"}},
    {"anyOf": [{"type": "null"}, {"if": {"type": "string"}}]},
])
def test_a_schema_with_a_rule_that_is_not_checked_is_refused(schema: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="not checked here|unknown type"):
        SchemaValidator(schema)


def test_an_unknown_field_and_a_missing_one_are_named_never_the_value() -> None:
    check = SchemaValidator({"type": "object", "additionalProperties": False,
                             "required": ["name"], "properties": {"name": {"type": "string"},
                                                                  "inner": {
                                 "type": "object", "additionalProperties": False,
                                 "properties": {}}}})
    issues = sorted((i.path, i.rule, i.extra) for i in check.issues(
        {"password": "s3cret", "inner": {"zzz": 1}}))
    assert issues == [((), "additionalProperties", "password"), ((), "required", "name"),
                      (("inner",), "additionalProperties", "zzz")]
    assert all("s3cret" not in repr(i) for i in check.issues({"password": "s3cret"}))


def test_a_wrong_kind_is_named_in_words_for_every_branch() -> None:
    either = Issue(("when",), "anyOf", [{"type": ["string", "null"]}, {"type": "integer"}])
    assert _schema_error(either).detail == "when must be a string or null or a whole number"
    assert _schema_error(Issue((), "type", "object")).detail == "the body must be an object"
    untyped = Issue(("x",), "anyOf", [{"minimum": 1}, {"maximum": -1}])
    assert _schema_error(untyped).detail == "x breaks the rule 'anyOf' of the schema"
