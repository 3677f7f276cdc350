"""The supervisor: starts the worker processes, restarts one that dies, stops them all.

:func:`serve_cluster` is ``camrelay serve`` with ``relay.workers`` >= 2.  It binds the
front's listener first (a second ``serve`` on the same address fails there) and locks
``<data_dir>/run`` (so does a second ``serve`` on the same data directory); then, before
any worker starts, it prepares what must not be raced: store migrations ran when the CLI
opened the store; the journal's tables, head and triggers; views a crashed single
process left open under the machine's node id.

Workers run ``python -m camrelay.cluster.worker`` in their own session (a terminal's
Ctrl-C reaches the supervisor only; it forwards the signal).  A worker that exits is
restarted after a backoff (0.5 s doubling to 30 s, reset once it has run for 30 s),
with a log line each time; its requests meanwhile get 503 with ``Retry-After``.  A
worker that cannot start at all at start-up stops the others and ``serve`` exits 1.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import math
import os
import signal
import stat
import sys
import time
from typing import IO

from aiohttp import web

from camrelay.access.journal import Journal, load_node_id
from camrelay.cluster.front import Front, WorkerLink
from camrelay.cluster.worker import READY, RUN_DIR, settings_json, socket_path
from camrelay.errors import CamrelayError, ConfigError
from camrelay.settings import Settings
from camrelay.store import Store
from camrelay.tls import ssl_context

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0  # a worker up this long starts the backoff afresh when it dies
MAX_UNIX_PATH = 107  # sun_path holds 108 bytes with the terminating NUL


class WorkerStartFailed(CamrelayError):
    title = "Worker process failed to start"


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Supervisor:
    """Owns the worker processes and their watcher tasks; ``links`` are the front's."""

    def __init__(self, settings: Settings, count: int) -> None:
        if count < 2:
            raise ValueError("a supervisor runs at least two workers")
        self.settings = settings
        self.count = count
        self.run_dir = settings.data_dir / RUN_DIR
        self.links = [WorkerLink(k, socket_path(settings, k)) for k in range(count)]
        self._line = settings_json(settings).encode("utf-8") + b"\n"
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._started_at: dict[int, float] = {}
        self._watchers: list[asyncio.Task[None]] = []
        self._pumps: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._lock: IO[bytes] | None = None

    # ---- the run directory -------------------------------------------------------------

    def prepare_run_dir(self) -> None:
        """``<data_dir>/run``: ours, mode 0700, locked, without stale sockets."""
        run = self.run_dir
        run.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = run.stat()
        if info.st_uid != os.getuid():
            raise ConfigError(f"data_dir: {run} belongs to another user; the worker sockets "
                              "must be private")
        os.chmod(run, 0o700)
        for link in self.links:
            if len(os.fsencode(link.path.resolve())) > MAX_UNIX_PATH:
                raise ConfigError(f"data_dir: the worker socket {link.path} is longer than a "
                                  "unix socket path may be; use a shorter data directory")
        lock = (run / "supervisor.lock").open("ab")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise ConfigError(f"data_dir: another `camrelay serve` runs worker processes on "
                              f"{self.settings.data_dir}") from None
        self._lock = lock
        for old in run.glob("worker-*.sock"):
            try:
                if stat.S_ISSOCK(old.lstat().st_mode):
                    old.unlink()
            except FileNotFoundError:
                pass

    def release_run_dir(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # ---- starting ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker; all ready, or ``WorkerStartFailed`` with the others stopped."""
        results = await asyncio.gather(*(self._start_one(k) for k in range(self.count)),
                                       return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await self.stop()
            for err in failed:
                if not isinstance(err, Exception):
                    raise err
            raise WorkerStartFailed("; ".join(
                e.detail if isinstance(e, CamrelayError) else f"{type(e).__name__}: {e}"
                for e in failed))
        self._watchers = [asyncio.create_task(self._watch(k), name=f"camrelay-worker-{k}")
                          for k in range(self.count)]

    async def _start_one(self, index: int) -> None:
        link = self.links[index]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "camrelay.cluster.worker", "--index", str(index),
            "--count", str(self.count), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, start_new_session=True)
        self._procs[index] = proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(self._line)
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # it exited at once: reported below
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while True:
                    line = await proc.stdout.readline()
                    if not line:
                        code = await proc.wait()
                        raise WorkerStartFailed(f"worker {index} exited before it was ready "
                                                f"({describe_exit(code)}; see the log above)")
                    if line.strip() == READY.encode():
                        break
                    _echo(line)
        except TimeoutError:
            await _kill(proc)
            raise WorkerStartFailed(f"worker {index} was not ready within {START_TIMEOUT:g} "
                                    "s") from None
        except asyncio.CancelledError:
            await _kill(proc)
            raise
        pump = asyncio.create_task(_pump(proc.stdout), name=f"camrelay-worker-{index}-stdout")
        self._pumps.add(pump)
        pump.add_done_callback(self._pumps.discard)
        self._started_at[index] = time.monotonic()
        link.pid = proc.pid
        link.up = True
        log.info("worker %d ready (pid %d, %s)", index, proc.pid, link.path)

    # ---- watching ----------------------------------------------------------------------

    async def _watch(self, index: int) -> None:
        """Restart worker ``index`` whenever it exits, until the supervisor stops."""
        link = self.links[index]
        backoff = BACKOFF_FIRST
        while True:
            proc = self._procs[index]
            code = await proc.wait()
            link.up = False
            if self._stopping:
                return
            if proc.stdin is not None:
                proc.stdin.close()
            if time.monotonic() - self._started_at.get(index, 0.0) >= STABLE_AFTER:
                backoff = BACKOFF_FIRST
            link.retry_after = math.ceil(backoff) + 2
            log.error("worker %d (pid %d) exited (%s); restarting it in %.1f s", index,
                      proc.pid, describe_exit(code), backoff)
            await asyncio.sleep(backoff)  # the backoff itself, not a readiness signal
            if self._stopping:
                return
            try:
                await self._start_one(index)
            except WorkerStartFailed as err:
                log.error("worker %d could not be restarted: %s", index, err.detail)
            else:
                link.restarts += 1
                log.warning("worker %d restarted (pid %d)", index, self._procs[index].pid)
            backoff = min(backoff * 2, BACKOFF_MAX)

    # ---- stopping ----------------------------------------------------------------------

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Forward ``sig`` to every worker, wait for them (then kill), end the tasks."""
        self._stopping = True
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers = []
        alive = [p for p in self._procs.values() if p.returncode is None]
        for proc in alive:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass
        for index, proc in self._procs.items():
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    code = await proc.wait()
            except TimeoutError:
                log.error("worker %d (pid %d) did not stop within %g s; killing it", index,
                          proc.pid, STOP_TIMEOUT)
                await _kill(proc)
                continue
            if code not in (0, -sig):
                log.warning("worker %d (pid %d) ended with %s", index, proc.pid,
                            describe_exit(code))
            if proc.stdin is not None:
                proc.stdin.close()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        for link in self.links:
            link.up = False


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    await proc.wait()


def _echo(line: bytes) -> None:
    sys.stdout.buffer.write(line)
    sys.stdout.flush()


async def _pump(stream: asyncio.StreamReader) -> None:
    """Pass a worker's stdout on (it has nothing to say after READY, but must not block)."""
    while line := await stream.readline():
        _echo(line)


async def _prepare_journal(settings: Settings, store: Store) -> None:
    """Create the journal once, and close views a single process left open on a crash."""
    journal = Journal(settings, store)
    try:
        await journal.start()
        await journal.recover(node=load_node_id(settings.data_dir))
    finally:
        await journal.close()


async def serve_cluster(settings: Settings, store: Store, count: int, *,
                        ready: asyncio.Event | None = None,
                        stop: asyncio.Event | None = None) -> None:
    """The front on ``server.listen`` and ``count`` workers, until SIGINT/SIGTERM (or
    ``stop``)."""
    supervisor = Supervisor(settings, count)
    front = Front(settings, supervisor.links)
    runner = web.AppRunner(front.create_app(), access_log=None, handler_cancellation=True,
                           shutdown_timeout=10.0)
    await runner.setup()
    context = ssl_context(settings)
    stop = stop or asyncio.Event()
    received: list[signal.Signals] = []
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
            pass
    try:
        site = web.TCPSite(runner, settings.server.host, settings.server.port,
                           ssl_context=context, reuse_address=True)
        await site.start()
        supervisor.prepare_run_dir()
        await _prepare_journal(settings, store)  # only once nothing else serves this store
        starting = asyncio.create_task(supervisor.start(), name="camrelay-workers-start")
        stopped = asyncio.create_task(stop.wait(), name="camrelay-stop")
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # a signal during start-up
            starting.cancel()
        stopped.cancel()
        await asyncio.gather(stopped, return_exceptions=True)
        try:
            await starting
        except asyncio.CancelledError:
            if not stop.is_set():
                raise
        if not stop.is_set():
            scheme = "https" if context else "http"
            log.info("camrelay listening on %s://%s:%d (%d worker processes)", scheme,
                     settings.server.host, settings.server.port, count)
            if ready is not None:
                ready.set()
            await stop.wait()
    finally:
        log.info("camrelay stopping")
        await runner.cleanup()
        await supervisor.stop(received[0] if received else signal.SIGTERM)
        supervisor.release_run_dir()


__all__ = ["Supervisor", "WorkerStartFailed", "serve_cluster"]
