"""The probe process: each health check's blocking work, out of the server's process.

A check's RTSP open, keyframe decode, picture checks and thumbnail JPEG cost about
45 ms of CPU, part of it holding the interpreter lock (PyAV's demux loop, numpy).  Run
in threads of the server, 3.3 probes a second delayed the relay's event loop: the
watched cameras' viewers got a threefold p99 latency and lost packets (BENCHMARKS.md,
issue 15).  So one child process per server process (started with the first check,
``python -m camrelay.health.probe_process``) does that work in up to
``health.concurrency`` threads of its own, at the lower CPU priority
``health.probe_nice``; the server's loop only sends a request and reads an answer.

The pipe carries length-prefixed pickles between this process and the child it
started, nothing else: the child's own stdout is redirected to its stderr (FFmpeg's
and the log's lines go to the server's log).  The child ends when the server closes
the pipe (or dies).  If the child dies, the checks waiting for it fail as "error"
and the next check starts another.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import pickle
import struct
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any

from camrelay.errors import CamrelayError, SourceUnavailable
from camrelay.memory import limit_malloc_arenas
from camrelay.relay.stream import SourceSpec
from camrelay.settings import HealthSettings
from camrelay.tasks import stop_task

if TYPE_CHECKING:
    from camrelay.health.judge import Judge

log = logging.getLogger(__name__)

# A judged keyframe: (status, reason, findings), and the thumbnail (JPEG, width, height)
# or None
Judged = tuple[tuple[str, str | None, tuple[dict[str, Any], ...]],
               tuple[bytes, int, int] | None]

_HEAD = struct.Struct(">I")
START_TIMEOUT = 60.0  # seconds for the child to import its modules and say "ready"


class ProbeProcessError(CamrelayError):
    """The probe process ended or failed to judge a keyframe."""


def _frame(obj: object) -> bytes:
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEAD.pack(len(body)) + body


class ProbeProcess:
    """The server's side: start the child on first use, send requests, match answers."""

    def __init__(self, settings: HealthSettings) -> None:
        self.settings = settings
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Judged]] = {}
        self._ids = itertools.count(1)
        self._starting = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def _started(self) -> asyncio.subprocess.Process:
        async with self._starting:
            if self._proc is None:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "camrelay.health.probe_process",
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(_frame(self.settings))
                try:  # its imports (PyAV, numpy) at low priority: not a check's time
                    async with asyncio.timeout(START_TIMEOUT):
                        (size,) = _HEAD.unpack(await proc.stdout.readexactly(_HEAD.size))
                        await proc.stdout.readexactly(size)  # "ready"
                except (TimeoutError, asyncio.IncompleteReadError) as exc:
                    proc.kill()
                    await proc.wait()
                    raise ProbeProcessError(
                        f"the probe process did not start ({type(exc).__name__})") from None
                self._proc = proc
                self._reader = asyncio.create_task(self._read(proc, proc.stdout),
                                                   name="probe process answers")
                log.info("health: probe process %s started", proc.pid)
            return self._proc

    async def _read(self, proc: asyncio.subprocess.Process,
                    stdout: asyncio.StreamReader) -> None:
        try:
            while True:
                (size,) = _HEAD.unpack(await stdout.readexactly(_HEAD.size))
                # our own child's answer: the pickle is as trusted as this process
                req, answer = pickle.loads(await stdout.readexactly(size))
                waiter = self._pending.pop(req, None)
                if waiter is None or waiter.done():
                    continue  # its check was cancelled or timed out meanwhile
                kind = answer[0]
                if kind == "ok":
                    waiter.set_result(answer[1])
                elif kind == "unavailable":
                    waiter.set_exception(SourceUnavailable(answer[1], reason=answer[2]))
                elif kind == "error":
                    waiter.set_exception(ValueError(answer[1]))
                else:
                    waiter.set_exception(ProbeProcessError(answer[1]))
        except (asyncio.IncompleteReadError, ConnectionError):
            if self._proc is proc:  # not closed by us
                self._proc = None
                log.warning("health: probe process %s ended (exit code %s); the next check "
                            "starts another", proc.pid, await proc.wait())
        finally:
            if self._proc is proc:
                self._proc = None
            for waiter in self._pending.values():
                if not waiter.done():
                    waiter.set_exception(ProbeProcessError("the probe process ended"))
            self._pending.clear()

    async def _ask(self, request: tuple[Any, ...], timeout: float) -> Judged:
        proc = await self._started()
        assert proc.stdin is not None
        req = next(self._ids)
        waiter: asyncio.Future[Judged] = asyncio.get_running_loop().create_future()
        self._pending[req] = waiter
        try:
            proc.stdin.write(_frame((req, request)))
            async with asyncio.timeout(timeout):
                await proc.stdin.drain()
                return await waiter
        except ConnectionError:
            raise ProbeProcessError("the probe process ended") from None
        finally:
            self._pending.pop(req, None)

    async def open(self, camera_id: int, category: str, spec: SourceSpec,
                   timeout: float) -> Judged:
        """Open ``spec``, judge its first keyframe; :class:`SourceUnavailable` with the
        reason when it cannot, ``TimeoutError`` past ``timeout``."""
        return await self._ask(("open", camera_id, category, spec), timeout)

    async def unit(self, camera_id: int, category: str, data: bytes, codec: str,
                   fresh: bool, timeout: float) -> Judged:
        """Judge one keyframe access unit from the hub."""
        return await self._ask(("unit", camera_id, category, data, codec, fresh), timeout)

    def forget(self, camera_id: int) -> None:
        """The frozen-picture history of ``camera_id`` starts again (nothing if no
        process runs: it has none)."""
        proc = self._proc
        if proc is not None and proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.write(_frame((0, ("forget", camera_id))))

    async def close(self) -> None:
        """End the child (closing its pipe ends it; killed if it lingers)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await stop_task(self._reader)
        self._reader = None


# --------------------------------------------------------------------------- the child

def _read_frame(src: IO[bytes]) -> Any:
    head = src.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    (size,) = _HEAD.unpack(head)
    body = src.read(size)
    if len(body) < size:
        return None
    return pickle.loads(body)  # from the server that started us


def _answer(judge: Judge, request: tuple[Any, ...]) -> tuple[Any, ...]:
    try:
        if request[0] == "open":
            return ("ok", judge.open(*request[1:]))
        return ("ok", judge.unit(*request[1:]))
    except SourceUnavailable as err:
        return ("unavailable", err.detail, err.reason)
    except (CamrelayError, ValueError, OSError) as err:  # garbage from the camera
        return ("error", str(err))
    except Exception as err:  # a bug: logged here, the check is a fault, we go on
        log.exception("[camera %s] health check failed in the probe process", request[1])
        return ("bug", f"{type(err).__name__}: {err}")


def main() -> None:
    """The child: judge requests from stdin in threads, answers to the original stdout."""
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # stray prints and FFmpeg's stdout go to the server's log, not the pipe
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limit_malloc_arenas()  # as the server: before any thread starts
    src = sys.stdin.buffer
    settings: HealthSettings | None = _read_frame(src)
    if settings is None:
        return
    if settings.probe_nice:
        os.nice(settings.probe_nice)
    from camrelay.health.judge import Judge  # after nice: the heavy imports run low too

    judge = Judge(settings)
    out.write(_frame((0, ("ready",))))
    lock = threading.Lock()

    def run(req: int, request: tuple[Any, ...]) -> None:
        answer = _frame((req, _answer(judge, request)))
        with lock:
            out.write(answer)

    # one thread per check the server lets run at once (drills share that limit)
    with ThreadPoolExecutor(settings.concurrency, thread_name_prefix="probe") as pool:
        while (message := _read_frame(src)) is not None:
            req, request = message
            if request[0] == "forget":
                judge.forget(request[1])
            else:
                pool.submit(run, req, request)


if __name__ == "__main__":
    main()
