"""JSON from outside, parsed with limits: hostile text is a clear refusal, never a crash.

The standard parser accepts text that breaks camrelay later: nesting deep enough to
exhaust the interpreter's stack (in the parser, the validator or the journal), lone
UTF-16 surrogates (``"\\ud800"``) that no UTF-8 store or log can hold, integers past
Python's 4300-digit conversion limit, and ``NaN``/``Infinity``, which are not JSON
(RFC 8259 section 6).  :func:`loads` refuses each of them with :class:`UnsafeJson`;
callers turn that into their own error (a 400 on the web, a file error in the CLI).
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64  # the API's schemas nest five levels at most
MAX_DIGITS = 4300  # Python's own limit for int(str) (sys.get_int_max_str_digits)


class UnsafeJson(ValueError):
    """Text that is not JSON, or JSON camrelay will not take in."""


def is_text(value: str) -> bool:
    """False for a string holding a lone surrogate (not encodable as UTF-8)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def loads(text: str, *, max_depth: int = MAX_DEPTH) -> Any:
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise UnsafeJson(f"it is nested more than {max_depth} levels deep") from None
    except json.JSONDecodeError as err:
        raise UnsafeJson(str(err)) from None
    _check_tree(value, max_depth)
    return value


def _int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_DIGITS:
        raise UnsafeJson(f"a number has more than {MAX_DIGITS} digits")
    return int(digits)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJson(f"the number {text[:20]} is too large")
    return value


def _constant(name: str) -> Any:
    raise UnsafeJson(f"{name} is not a JSON value")


def _check_tree(value: Any, max_depth: int) -> None:
    """Depth and text of every key and string, without recursion."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if not is_text(item):
                raise UnsafeJson(f"{_where(path)} holds a lone UTF-16 surrogate "
                                 "(such as \\ud800), which is not text")
            continue
        if isinstance(item, dict):
            children: list[tuple[str | int, Any]] = list(item.items())
        elif isinstance(item, list):
            children = list(enumerate(item))
        else:
            continue
        if len(path) >= max_depth:
            raise UnsafeJson(f"it is nested more than {max_depth} levels deep")
        for key, child in children:
            if isinstance(key, str) and not is_text(key):
                raise UnsafeJson(f"a field name in {_where(path)} holds a lone UTF-16 "
                                 "surrogate (such as \\ud800), which is not text")
            stack.append((child, (*path, key)))


def _where(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p)[:64] for p in path) or "the document"
