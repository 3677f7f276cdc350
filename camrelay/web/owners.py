"""Which worker process serves a request, derived from the routes' declarations.

A route declared with ``owner="camera_id"`` goes to the worker that owns the camera named
by that path parameter; one declared with ``fan_out`` (a GET) goes to every worker and the
answers are merged.  The front (``camrelay.cluster.routing``) and a worker's guard read
the same table, built from the declared operations without starting an application."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from camrelay.ownership import parse_camera_id
from camrelay.web.openapi import Api, FanOut

_PARAM = re.compile(r"\{([^{}]+)\}")


def _pattern(path: str, owner: str) -> re.Pattern[str]:
    """The declared path as a regular expression over the decoded request path; the
    owner's parameter is the group ``camera``."""
    out, at = [], 0
    for match in _PARAM.finditer(path):
        out.append(re.escape(path[at:match.start()]))
        name = match.group(1)
        out.append("(?P<camera>[^/]+)" if name == owner else "[^/]+")
        at = match.end()
    out.append(re.escape(path[at:]))
    return re.compile("".join(out))


@dataclass(frozen=True, slots=True)
class OwnerTable:
    owned: tuple[re.Pattern[str], ...]
    fanned_out: dict[str, FanOut]  # GET path -> merge

    @classmethod
    def from_apis(cls, apis: Iterable[Api]) -> OwnerTable:
        owned: dict[str, re.Pattern[str]] = {}
        fanned_out: dict[str, FanOut] = {}
        for api in apis:
            for op in api.operations:
                if op.owner is not None:
                    if "{" + op.owner + "}" not in op.path:
                        raise ValueError(f"{op.method} {op.path}: owner {op.owner!r} is not "
                                         "a path parameter")
                    owned.setdefault(op.path, _pattern(op.path, op.owner))
                if op.fan_out is not None and op.method == "GET":
                    fanned_out[op.path] = op.fan_out
        return cls(tuple(owned.values()), fanned_out)

    def camera_of(self, path: str) -> int | None:
        """The camera whose media or device ``path`` is about (None: not such a route, or
        an id no camera can have -- worker 0 then answers 404 like a single process)."""
        for pattern in self.owned:
            match = pattern.fullmatch(path)
            if match is not None:
                return parse_camera_id(match.group("camera"))
        return None

    def fan_out(self, method: str, path: str) -> FanOut | None:
        return self.fanned_out.get(path) if method == "GET" else None
