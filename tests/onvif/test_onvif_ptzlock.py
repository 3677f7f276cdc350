"""The PTZ control lock with an injected clock: no sleeping."""

from __future__ import annotations

import pytest

from camrelay.onvif.errors import PtzBusy
from camrelay.onvif.ptzlock import PtzLock, PtzSession


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_holder_keeps_control_until_idle(clock: Clock) -> None:
    ended: list[PtzSession] = []
    lock = PtzLock(idle_takeover=5, clock=clock, wall_clock=clock, on_session_end=ended.append)
    lock.command("cam-1", "alice")
    clock.now += 3
    lock.command("cam-1", "alice")
    clock.now += 4  # 4 s idle < 5
    with pytest.raises(PtzBusy) as info:
        lock.command("cam-1", "bob")
    assert info.value.holder == "alice"
    assert info.value.retry_after == pytest.approx(1.0)
    assert "alice" in info.value.detail and info.value.status == 409
    holder = lock.holder("cam-1")
    assert holder is not None and (holder.user, holder.commands) == ("alice", 2)
    assert holder.since == 1000.0 and holder.last_command == 1003.0
    clock.now += 1  # 5 s idle: bob takes over
    lock.command("cam-1", "bob")
    assert lock.holder("cam-1").user == "bob"  # type: ignore[union-attr]
    assert ended == [PtzSession(camera="cam-1", user="alice", emergency=False,
                                started_at=1000.0, ended_at=1008.0, commands=2,
                                ended_by="takeover", taken_over_by="bob")]


def test_emergency_takes_over_at_once(clock: Clock) -> None:
    lock = PtzLock(clock=clock)
    lock.command(7, "alice")
    holder = lock.command(7, "chief", emergency=True)
    assert holder.emergency and holder.user == "chief"
    # an emergency holder is not bumped by another emergency user while active
    clock.now += 1
    with pytest.raises(PtzBusy):
        lock.command(7, "deputy", emergency=True)
    with pytest.raises(PtzBusy):
        lock.acquire(7, "alice")


def test_cameras_are_independent_and_release_ends_the_session(clock: Clock) -> None:
    ended: list[PtzSession] = []
    lock = PtzLock(clock=clock, wall_clock=clock, on_session_end=ended.append)
    lock.command("a", "alice")
    lock.command("b", "bob")
    for _ in range(4):
        lock.command("a", "alice")
    assert lock.release("a", "bob") is None  # not bob's to release
    clock.now += 2
    session = lock.release("a", "alice")
    assert session is not None and session.commands == 5 and session.ended_by == "release"
    assert session.ended_at - session.started_at == 2
    assert lock.holder("a") is None and lock.holder("b") is not None
    lock.command("a", "carol")  # free again at once
    assert ended == [session]


def test_expire_idle(clock: Clock) -> None:
    lock = PtzLock(idle_takeover=5, clock=clock)
    lock.command("a", "alice")
    clock.now += 59
    assert lock.expire_idle() == []
    clock.now += 1
    [session] = lock.expire_idle()
    assert session.ended_by == "expired" and lock.holder("a") is None


def test_idle_for(clock: Clock) -> None:
    lock = PtzLock(clock=clock)
    assert lock.idle_for("x") is None
    lock.acquire("x", "alice")
    clock.now += 2.5
    assert lock.idle_for("x") == 2.5
