"""A blocking job in its own thread, owned by the coroutine that awaits it.

PyAV's open and demux, decoding and x264 block: the sources that use them (the FFmpeg
source, the demo pattern, the transcoder) run them in a :class:`Worker` and hand their
results to the event loop with :meth:`Worker.post`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any


class Worker:
    """A blocking job in its own (non-daemon) thread, owned by the coroutine that awaits
    :meth:`run`.  Cancelling ``run`` sets :attr:`stop` and waits for the thread to end,
    so no thread outlives its owner.  The job posts to the loop with :meth:`post`."""

    def __init__(self, name: str, target: Callable[[Worker], None]) -> None:
        self.name = name
        self.stop = threading.Event()
        self._target = target
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._main, name=name)

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.stop.is_set():
            return
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed: the owner is gone
            self.stop.set()

    def _main(self) -> None:
        error: BaseException | None = None
        try:
            self._target(self)
        except BaseException as exc:  # noqa: BLE001  handed to the owner, re-raised there
            error = exc
        try:
            self._loop.call_soon_threadsafe(self._finish, error)
        except RuntimeError:
            pass

    def _finish(self, error: BaseException | None) -> None:
        if self._done.done():
            return
        if error is None:
            self._done.set_result(None)
        else:
            self._done.set_exception(error)

    async def run(self) -> None:
        self._thread.start()
        try:
            await asyncio.shield(self._done)
        except asyncio.CancelledError:
            self.stop.set()
            while not self._done.done():
                try:
                    await asyncio.shield(self._done)
                except asyncio.CancelledError:
                    continue
                except Exception:  # noqa: BLE001  the job's own error: we are cancelled, moot
                    break
            if self._done.done() and not self._done.cancelled():
                self._done.exception()  # retrieved: we are cancelled, it no longer matters
            raise
        finally:
            # the thread has posted its result: it is returning, the join is immediate
            if self._thread.ident is not None:
                self._thread.join()
