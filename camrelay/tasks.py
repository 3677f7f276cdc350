"""Owned background tasks: how an owner stops one.

``stop_task`` cancels the task and waits for it to end.  The owner's own cancellation
still propagates (a bare ``except CancelledError: pass`` around ``await task`` would
swallow it), and an error the task had already died of is logged, not lost.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has ended."""
    if task is None:
        return
    task.cancel()
    outcomes: list[object] = await asyncio.gather(task, return_exceptions=True)
    outcome = outcomes[0]
    if isinstance(outcome, Exception):
        log.error("task %s had failed: %r", task.get_name(), outcome)


async def wait_any(*events: asyncio.Event) -> None:
    """Return once any of ``events`` is set (the waiters are cancelled and awaited)."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
