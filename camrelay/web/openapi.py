"""Routes declared once, with their schemas: served, validated and documented from here.

Every JSON API route is registered through :class:`Api`, which adds it to the aiohttp
router, validates its JSON body against the declared schema before the handler runs,
and writes it into the OpenAPI 3.1 document.  Routes added to the router by other
means (WHEP, static pages) are declared with :meth:`Api.document_route` so a test can
check both directions: every route documented, every documented path served.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from aiohttp import web

from camrelay import __version__, jsonsafe
from camrelay.errors import (
    BadRequest,
    CamrelayError,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationError,
)
from camrelay.web.keys import BODY_KEY
from camrelay.web.validation import Issue, SchemaValidator

FanOut = Literal["sessions", "metrics"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Called when a route's body is refused (4xx), with the parsed body or None if it was not
# JSON; then the refusal goes on (the login counts a refused attempt for its lockout).
Refused = Callable[[web.Request, Any], Awaitable[None]]

PROBLEM = {
    "type": "object",
    "required": ["title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "field": {"type": ["string", "null"]},
    },
}

ERROR_TEXT = {
    400: "The request cannot be parsed",
    401: "No valid bearer token",
    403: "The caller may not do this",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflicts with the current state",
    413: "The body is too large",
    415: "Wrong content type",
    422: "A field breaks a rule",
    429: "Too many attempts",
    503: "A camera or dependency is unavailable",
}


@dataclass
class Operation:
    method: str
    path: str
    summary: str
    tag: str
    handler: Handler | None = None
    params: list[dict[str, Any]] = field(default_factory=list)
    body: dict[str, Any] | None = None
    body_type: str = "application/json"
    responses: dict[int, tuple[str, dict[str, Any] | None, str]] = field(default_factory=dict)
    public: bool = False
    errors: tuple[int, ...] = ()
    refused: Refused | None = None
    # With relay.workers >= 2 (camrelay.cluster): the path parameter that names the camera
    # whose worker process serves this route (its hub stream, WebRTC sessions, snapshot
    # cache or PTZ control), or the merge of every worker's answer ("sessions",
    # "metrics"); neither: worker 0 answers.
    owner: str | None = None
    fan_out: FanOut | None = None


def query(name: str, schema: dict[str, Any], description: str = "",
          required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": description}


def path_param(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema,
            "description": description}


class Api:
    def __init__(self) -> None:
        self.operations: list[Operation] = []
        self.schemas: dict[str, dict[str, Any]] = {"Problem": PROBLEM}

    def schema(self, name: str, schema: dict[str, Any]) -> dict[str, str]:
        self.schemas[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}

    def route(self, method: str, path: str, *, summary: str, tag: str,
              params: list[dict[str, Any]] | None = None, body: dict[str, Any] | None = None,
              body_type: str = "application/json",
              responses: dict[int, tuple[str, dict[str, Any] | None, str]] | None = None,
              ok: dict[str, Any] | None = None, ok_status: int = 200, public: bool = False,
              errors: tuple[int, ...] = (400, 401, 403, 404, 422),
              refused: Refused | None = None, owner: str | None = None,
              fan_out: FanOut | None = None) -> Callable[[Handler], Handler]:
        responses = dict(responses or {})
        if not responses:
            responses[ok_status] = ("Success", ok, "application/json")

        def register(handler: Handler) -> Handler:
            self.operations.append(Operation(
                method=method, path=path, summary=summary, tag=tag, handler=handler,
                params=params or [], body=body, body_type=body_type, responses=responses,
                public=public, errors=errors, refused=refused, owner=owner,
                fan_out=fan_out))
            return handler

        return register

    def document_route(self, op: Operation) -> None:
        """Document a route that is added to the router elsewhere (WHEP, pages)."""
        self.operations.append(op)

    def install(self, app: web.Application) -> None:
        for op in self.operations:
            if op.handler is not None:
                app.router.add_route(op.method, op.path, _validating(op, self))

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Inline the component references so a validator can use the schema alone."""
        resolved: dict[str, Any] = _inline(schema, self.schemas)
        return resolved

    def document(self) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            entry: dict[str, Any] = {
                "summary": op.summary,
                "tags": [op.tag],
                "operationId": f"{op.method.lower()}_{_slug(op.path)}",
                "responses": {},
            }
            if op.params:
                entry["parameters"] = op.params
            if op.public:
                entry["security"] = []
            if op.body is not None:
                entry["requestBody"] = {"required": True,
                                        "content": {op.body_type: {"schema": op.body}}}
            for status, (text, schema, ctype) in op.responses.items():
                response: dict[str, Any] = {"description": text}
                content: dict[str, Any] = {}
                for one in ctype.split(","):
                    if status == 204:
                        break
                    if one == "application/json":
                        content[one] = {"schema": schema if schema is not None else {}}
                    else:
                        content[one] = {"schema": schema or {"type": "string"}}
                if content:
                    response["content"] = content
                entry["responses"][str(status)] = response
            for status in sorted(set(op.errors) | ({413} if op.body is not None else set())
                                 | ({415} if op.body is not None else set())
                                 | ({401} if not op.public else set())):
                entry["responses"].setdefault(str(status), {
                    "description": ERROR_TEXT.get(status, "Error"),
                    "content": {"application/problem+json": {
                        "schema": {"$ref": "#/components/schemas/Problem"}}},
                })
            paths.setdefault(op.path, {})[op.method.lower()] = entry
        return {
            "openapi": "3.1.0",
            "info": {
                "title": "camrelay",
                "version": __version__,
                "description": "Camera relay for command centres: catalogue, access control, "
                               "access log and WebRTC (WHEP) viewing.",
            },
            "paths": paths,
            "components": {
                "schemas": self.schemas,
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer",
                               "description": "A camrelay API or login token (crt_…)"},
                },
            },
            "security": [{"bearer": []}],
        }


def _slug(path: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in path.strip("/")).strip("_")


def _inline(schema: Any, components: dict[str, dict[str, Any]]) -> Any:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            return _inline(components[ref.rsplit("/", 1)[1]], components)
        return {k: _inline(v, components) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inline(v, components) for v in schema]
    return schema


def _validating(op: Operation, api: Api) -> Handler:
    body_schema = api.resolve(op.body) if op.body is not None else None
    validator = SchemaValidator(body_schema) if (
        body_schema is not None and op.body_type == "application/json") else None

    queries = [(p["name"], SchemaValidator(api.resolve(p["schema"])), p["schema"],
                bool(p.get("required"))) for p in op.params if p.get("in") == "query"]

    async def handler(request: web.Request) -> web.StreamResponse:
        for name, check, schema, required in queries:
            check_query(request, name, check, schema, required)
        if validator is not None:
            body = None
            try:
                body = await parse_json(request)
                check_body(body, validator)
            except CamrelayError:
                if op.refused is not None:
                    await op.refused(request, body)
                raise
            request[BODY_KEY] = body
        assert op.handler is not None
        return await op.handler(request)

    handler.__name__ = getattr(op.handler, "__name__", "handler")
    return handler


def check_query(request: web.Request, name: str, validator: SchemaValidator,
                schema: dict[str, Any], required: bool) -> None:
    """A query parameter against its declared schema: a 400 naming it, never its value."""
    values = request.query.getall(name, [])
    if not values:
        if required:
            raise BadRequest(f"query parameter {name} is required")
        return
    if len(values) > 1:
        raise BadRequest(f"query parameter {name} is given more than once")
    raw = values[0]
    kind = schema.get("type")
    value: Any = raw
    if kind == "integer":
        if not raw.lstrip("-").isdigit() or len(raw) > 18:
            raise BadRequest(f"query parameter {name} must be a whole number")
        value = int(raw)
    elif kind == "boolean":
        if raw.lower() not in ("true", "false", "1", "0"):
            raise BadRequest(f"query parameter {name} must be true or false")
        value = raw.lower() in ("true", "1")
    elif schema.get("format") == "date-time":
        try:
            when = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            when = None
        if when is None or when.tzinfo is None or "T" not in raw.upper():
            raise BadRequest(f"query parameter {name} must be an RFC 3339 time with an "
                             "offset, such as 2026-10-01T08:00:00+08:00")
    issue = validator.first_issue(value)
    if issue is not None:
        raise BadRequest(f"query parameter {name} {_rule(issue)}")


async def parse_json(request: web.Request) -> Any:
    """The JSON body, parsed with limits (camrelay.jsonsafe); 415, 413 or 400 otherwise."""
    ctype = request.content_type
    if ctype != "application/json":
        raise UnsupportedMediaType(f"expected a JSON body (application/json), got {ctype!r}")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(
            f"the body is larger than {request.app._client_max_size} bytes") from None
    try:
        return jsonsafe.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, jsonsafe.UnsafeJson) as err:
        raise BadRequest(f"the body is not valid JSON: {err}") from None


def check_body(body: Any, validator: SchemaValidator) -> None:
    issue = validator.first_issue(body)
    if issue is not None:
        raise _schema_error(issue)


def _schema_error(issue: Issue) -> ValidationError:
    """A 422 naming the field; never echoing the value (it may be a password or a URL)."""
    path = ".".join(str(p) for p in issue.path)
    if issue.rule in ("additionalProperties", "required"):
        name = f"{path}.{issue.extra}" if path else str(issue.extra)
        if issue.rule == "required":
            return ValidationError(f"{name} is required", field=name)
        name = f"{path}.{str(issue.extra)[:64]}" if path else str(issue.extra)[:64]
        return ValidationError(f"unknown field {name!r}", field=name)
    return ValidationError(f"{path or 'the body'} {_rule(issue)}", field=path or None)


_KINDS = {"string": "a string", "integer": "a whole number", "number": "a number",
          "boolean": "true or false", "object": "an object", "array": "a list", "null": "null"}


def _types(kinds: str | list[str]) -> list[str]:
    return [kinds] if isinstance(kinds, str) else list(kinds)


def _rule(issue: Issue) -> str:
    rule, value = issue.rule, issue.value
    if rule in ("type", "anyOf"):
        kinds = _types(value) if rule == "type" else [
            kind for branch in value for kind in _types(branch.get("type", []))]
        names = list(dict.fromkeys(_KINDS.get(kind, kind) for kind in kinds))
        if names:
            return "must be " + " or ".join(names)
    if rule == "maxLength":
        return f"is longer than {value} characters"
    if rule == "minLength":
        return "must not be empty" if value == 1 else f"is shorter than {value} characters"
    if rule == "enum":
        return "must be one of " + ", ".join("null" if v is None else str(v) for v in value)
    if rule == "maximum":
        return f"must be at most {value}"
    if rule == "minimum":
        return f"must be at least {value}"
    if rule == "exclusiveMinimum":
        return f"must be more than {value}"
    if rule == "exclusiveMaximum":
        return f"must be less than {value}"
    if rule == "multipleOf":
        return f"must be a multiple of {value}"
    if rule == "maxItems":
        return f"has more than {value} items"
    if rule == "minItems":
        return f"needs at least {value} item{'s' if value != 1 else ''}"
    if rule == "pattern":
        return "holds characters that are not allowed here"
    return f"breaks the rule {rule!r} of the schema"
