"""Keeping glibc's malloc from holding memory the server no longer uses.

The server's threads are SQLite connections (aiosqlite runs each in a thread of its own)
that come and go with bursts of requests.  glibc gives a new thread an arena of its own
and keeps it, with everything freed in it, after the thread ends; a closed connection's
page cache and statement cache stay resident that way.  :func:`limit_malloc_arenas`
caps the arenas (``MALLOC_ARENA_MAX``) at start; :func:`trim_soon` hands free memory back
to the system shortly after a burst's connections closed (``malloc_trim``).  Both do
nothing where the C library is not glibc.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys

_M_ARENA_MAX = -8  # glibc mallopt(3)
TRIM_DELAY = 1.0  # seconds after the last closed connection

_pending: asyncio.TimerHandle | None = None
trims = 0  # malloc_trim calls so far (for tests)


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt  # noqa: B018  glibc has both; musl has neither
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def limit_malloc_arenas(count: int = 2) -> bool:
    """At most ``count`` malloc arenas, set before any thread starts; an operator's own
    ``MALLOC_ARENA_MAX`` wins.  True when set here."""
    libc = _libc()
    if libc is None or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, count))


def trim_soon() -> None:
    """``malloc_trim(0)`` on the running loop :data:`TRIM_DELAY` seconds from now (once
    for a burst); outside a loop, at once."""
    global _pending
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _trim()
        return
    if _pending is not None:
        _pending.cancel()
    _pending = loop.call_later(TRIM_DELAY, _trim)


def _trim() -> None:
    global _pending, trims
    _pending = None
    libc = _libc()
    if libc is None:
        return
    trims += 1
    libc.malloc_trim(0)
