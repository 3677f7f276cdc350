"""Session fixtures for the RTSP camera simulator (``scripts/camsim.py``).

Use from any test folder's conftest.py::

    from tests.camsim_fixture import camsim, camsim_clips  # noqa: F401  (re-exported fixtures)

``camsim`` yields a :class:`CamSim`: ``url(mount, user=None, password=None)``,
``play_count(mount)`` (PLAY requests seen by the simulator, counted from its stdout),
``await wait_plays(mount, n, timeout)``, ``cut_count(mount)``, ``live_count(mount)``
(sessions playing now; ``await wait_live(mount, n)``), ``overlaps(mount, since)`` (how long two or more played at
once) and ``heard(mount)`` / ``await wait_heard(mount, above_db, timeout)`` (the peak
levels, dBFS, of what clients sent on the mount's ONVIF back-channel); ``force_keyframe(mount)``
(every client of the mount switches to a sync branch: the IDR a camera inserts for ONVIF
``SetSynchronizationPoint``; only ``/h264gop4`` has branches), ``keyed(mount)`` (clip frame
indices of the keyframes pushed on request so far), ``await wait_keyed(mount, n, timeout)``
and ``nokey_count(mount)`` (requests on a mount without branches); credentials for /auth are
``CamSim.USER`` / ``CamSim.PASSWORD``.  Clips are encoded once into tests/.cache/clips.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLIPS_DIR = ROOT / "tests" / ".cache" / "clips"
SYSTEM_PYTHON = "/usr/bin/python3"


class CamSim:
    USER = "viewer"
    PASSWORD = "canary-Pw-7f3e9"  # a canary: it must never show up in errors or logs
    FLAKY_SECONDS = 2.0

    def __init__(self, clips: Path) -> None:
        self._lock = threading.Lock()
        self._plays: Counter[str] = Counter()
        self._cuts: Counter[str] = Counter()
        self._gone: Counter[str] = Counter()
        self._heard: dict[str, list[float]] = {}
        self._keyed: dict[str, list[int]] = {}
        self._nokey: Counter[str] = Counter()
        self._stdin_lock = threading.Lock()
        self.timeline: list[tuple[float, str, str]] = []  # (monotonic, PLAY|GONE, mount)
        self.lines: list[str] = []
        env = dict(os.environ, CAMSIM_USER=self.USER, CAMSIM_PASSWORD=self.PASSWORD)
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(ROOT / "scripts" / "camsim.py"), "--clips", str(clips),
             "--port", "0", "--flaky-seconds", str(self.FLAKY_SECONDS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, text=True,
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline().split()
        if not ready or ready[0] != "READY":
            self.proc.kill()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"camsim did not start: {ready!r} {err}")
        self.port = int(ready[1])
        self.auth_port = int(ready[2].split("=", 1)[1])
        self._reader = threading.Thread(target=self._read, name="camsim-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            parts = line.split()
            with self._lock:
                self.lines.append(line.rstrip("\n"))
                if len(parts) >= 2 and parts[0] == "PLAY":
                    self._plays[parts[1]] += 1
                elif len(parts) >= 2 and parts[0] == "CUT":
                    self._cuts[parts[1]] += 1
                elif len(parts) >= 2 and parts[0] == "GONE":
                    self._gone[parts[1]] += 1
                elif len(parts) >= 3 and parts[0] == "BACKCHANNEL":
                    self._heard.setdefault(parts[1], []).append(float(parts[2]))
                elif len(parts) >= 3 and parts[0] == "KEYED":
                    self._keyed.setdefault(parts[1], []).append(int(parts[2]))
                elif len(parts) >= 2 and parts[0] == "NOKEY":
                    self._nokey[parts[1]] += 1
                if len(parts) >= 2 and parts[0] in ("PLAY", "GONE"):
                    self.timeline.append((time.monotonic(), parts[0], parts[1]))

    def url(self, mount: str, user: str | None = None, password: str | None = None) -> str:
        mount = "/" + mount.lstrip("/")
        port = self.auth_port if mount == "/auth" else self.port
        cred = f"{user}:{password}@" if user is not None else ""
        return f"rtsp://{cred}127.0.0.1:{port}{mount}"

    def play_count(self, mount: str) -> int:
        with self._lock:
            return self._plays["/" + mount.lstrip("/")]

    def cut_count(self, mount: str) -> int:
        with self._lock:
            return self._cuts["/" + mount.lstrip("/")]

    def live_count(self, mount: str) -> int:
        """RTSP sessions of ``mount`` playing now (PLAYs whose connection has not closed)."""
        mount = "/" + mount.lstrip("/")
        with self._lock:
            return self._plays[mount] - self._gone[mount]

    def overlaps(self, mount: str, since: float) -> float:
        """Seconds since ``since`` (monotonic) during which two or more sessions of ``mount``
        played at once (sessions already playing at ``since`` counted)."""
        mount = "/" + mount.lstrip("/")
        with self._lock:
            events = [(at, kind) for at, kind, m in self.timeline if m == mount]
        live, doubled, start = 0, 0.0, None
        for at, kind in events:
            live += 1 if kind == "PLAY" else -1
            if live >= 2 and start is None:
                start = at
            elif live < 2 and start is not None:
                doubled += max(0.0, at - max(start, since))
                start = None
        if start is not None:
            doubled += max(0.0, time.monotonic() - max(start, since))
        return doubled

    def heard(self, mount: str) -> list[float]:
        """Peak levels (dBFS, about two a second) of what the back-channel of ``mount``
        received so far; ``-inf`` for digital silence."""
        with self._lock:
            return list(self._heard.get("/" + mount.lstrip("/"), []))

    async def wait_heard(self, mount: str, above_db: float, timeout: float = 10.0) -> float:
        """Until the back-channel of ``mount`` heard a peak above ``above_db`` dBFS (polls
        stdout); that peak."""
        deadline = time.monotonic() + timeout
        while True:
            loud = [level for level in self.heard(mount) if level > above_db]
            if loud:
                return loud[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{mount}: back-channel heard {self.heard(mount)}, "
                                   f"nothing above {above_db} dBFS")
            await asyncio.sleep(0.02)  # polling a counter fed by another process

    def force_keyframe(self, mount: str) -> None:
        """Ask for a keyframe on ``mount`` (``KEY <mount>`` on the simulator's stdin): every
        client playing it gets one within the clip's ``sync_every`` frames; a request while
        one is pending or its branch plays is merged into it.  Safe from any thread."""
        with self._stdin_lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(f"KEY /{mount.lstrip('/')}\n")
            self.proc.stdin.flush()

    def keyed(self, mount: str) -> list[int]:
        """Clip frame indices of the keyframes pushed on request on ``mount`` (one per client
        and request)."""
        with self._lock:
            return list(self._keyed.get("/" + mount.lstrip("/"), []))

    def nokey_count(self, mount: str) -> int:
        """Keyframe requests answered ``NOKEY`` (``mount`` has no sync branches)."""
        with self._lock:
            return self._nokey["/" + mount.lstrip("/")]

    async def wait_keyed(self, mount: str, n: int, timeout: float = 10.0) -> list[int]:
        """Until at least ``n`` requested keyframes were pushed on ``mount`` (polls stdout
        counts); their clip frame indices."""
        deadline = time.monotonic() + timeout
        while len(keyed := self.keyed(mount)) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{mount}: {len(keyed)} requested keyframes, wanted {n}")
            await asyncio.sleep(0.02)  # polling a counter fed by another process
        return keyed

    async def wait_plays(self, mount: str, n: int, timeout: float = 10.0) -> None:
        """Wait until the simulator has seen at least ``n`` PLAYs on ``mount`` (polls stdout counts)."""
        deadline = time.monotonic() + timeout
        while self.play_count(mount) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{mount}: {self.play_count(mount)} PLAYs, wanted {n}")
            await asyncio.sleep(0.02)  # polling a counter fed by another process

    async def wait_live(self, mount: str, n: int, timeout: float = 10.0) -> None:
        """Until exactly ``n`` sessions of ``mount`` play (polls stdout counts)."""
        deadline = time.monotonic() + timeout
        while self.live_count(mount) != n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{mount}: {self.live_count(mount)} playing, wanted {n}")
            await asyncio.sleep(0.02)  # polling a counter fed by another process

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            with self._stdin_lock:
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=2)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def ensure_clips(out: Path = CLIPS_DIR) -> Path:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_clips.py"), "--out", str(out)],
        check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
    )
    return out


@pytest.fixture(scope="session")
def camsim_clips() -> Path:
    return ensure_clips()


@pytest.fixture(scope="session")
def camsim(camsim_clips: Path) -> Iterator[CamSim]:
    if not Path(SYSTEM_PYTHON).exists():
        pytest.fail("Debian's python3 with GStreamer's RTSP server is needed for camsim: "
                    "run scripts/setup-test-env.sh")
    sim = CamSim(camsim_clips)
    try:
        yield sim
    finally:
        sim.close()


JOIN_CLIPS_DIR = ROOT / "tests" / ".cache" / "join-clips"


@pytest.fixture(scope="session")
def camsim_720p() -> Iterator[CamSim]:
    """The simulator serving ``/j720g4``: 1280x720 25 fps, ~3 Mbit/s, GOP 4 s, 200 frames
    (``scripts/bench/clip.py``: frame numbers burnt in, moving grain)."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "bench" / "clip.py"),
                    "--out", str(JOIN_CLIPS_DIR), "--name", "j720g4", "--size", "1280x720",
                    "--gop", "4", "--bitrate", "3000000"],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    sim = CamSim(JOIN_CLIPS_DIR)
    try:
        yield sim
    finally:
        sim.close()
