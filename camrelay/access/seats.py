"""Concurrency limits on live views (``[limits]``): seats per camera and per viewer unit.

A live view (WHEP) takes a seat on its camera and on its viewer's unit (the user's own
unit, not its sub-units) before it is journalled, and gives it back when it closes.  A
view that would exceed ``limits.per_camera`` or ``limits.per_unit`` (or the unit's
override in ``limits.units``) is refused with 429, naming the limit; an **emergency**
view is never refused: it takes its seats over the limit, is counted (so the next
ordinary view waits for two to leave), and its journal record says which limit it went
over.  It displaces nobody.

:class:`LocalSeats` counts in this process (one node without ``redis_url``);
:class:`camrelay.cluster.seats.RedisSeats` counts for the whole cluster, checked and
taken atomically in Redis.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from camrelay.errors import TooManyRequests
from camrelay.settings import LimitSettings

RETRY_SECONDS = 5  # Retry-After of a refusal: views end at any time, a player may retry soon


@dataclass(frozen=True, slots=True)
class Seat:
    """The seats one live view holds (on its camera and on its viewer's unit)."""

    camera_id: int
    unit_code: str
    over: str | None = None  # an emergency view taken over this limit ("per_camera", ...)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True, slots=True)
class Occupancy:
    """Live views per camera and per viewer unit (this process's, or the cluster's)."""

    cameras: dict[int, int]
    units: dict[str, int]


def refusal(limit: str, *, camera_id: int, unit_code: str, allowed: int) -> TooManyRequests:
    where = f"camera {camera_id}" if limit == "per_camera" else f"unit {unit_code}"
    return TooManyRequests(
        f"{where} has {allowed} live view(s) open, its limit (limits.{limit}); try again "
        "when one ends", retry_after=RETRY_SECONDS, reason="concurrency_limit", limit=limit,
        allowed=allowed, camera_id=camera_id, unit=unit_code)


class Seats(Protocol):
    limits: LimitSettings

    async def take(self, camera_id: int, unit_code: str, *, emergency: bool) -> Seat:
        """A seat for a new live view; ``TooManyRequests`` (naming the limit) when the
        camera or the unit is full, unless ``emergency`` (then ``Seat.over`` says which)."""
        ...

    async def give_back(self, seat: Seat) -> None:
        """The view ended (idempotent; never raises)."""
        ...

    def local(self) -> Occupancy:
        """The seats held by this process's views."""
        ...


def unit_limit(limits: LimitSettings, unit_code: str) -> int:
    return limits.units.get(unit_code, limits.per_unit)


def first_full(limits: LimitSettings, unit_code: str, on_camera: int, in_unit: int
               ) -> tuple[str, int] | None:
    """The limit a new view would exceed, with its value, given the seats already taken."""
    if limits.per_camera and on_camera >= limits.per_camera:
        return "per_camera", limits.per_camera
    per_unit = unit_limit(limits, unit_code)
    if per_unit and in_unit >= per_unit:
        return "per_unit", per_unit
    return None


class LocalSeats:
    """Seats counted in this process: the limits of a node that runs alone."""

    def __init__(self, limits: LimitSettings) -> None:
        self.limits = limits
        self.held: dict[str, Seat] = {}

    def local(self) -> Occupancy:
        cameras = Counter(s.camera_id for s in self.held.values())
        units = Counter(s.unit_code for s in self.held.values())
        return Occupancy(dict(cameras), dict(units))

    def check(self, camera_id: int, unit_code: str, *, emergency: bool) -> str | None:
        """The limit a new view goes over (emergency), None if none; raises if refused."""
        now = self.local()
        full = first_full(self.limits, unit_code, now.cameras.get(camera_id, 0),
                          now.units.get(unit_code, 0))
        if full is None:
            return None
        if not emergency:
            raise refusal(full[0], camera_id=camera_id, unit_code=unit_code, allowed=full[1])
        return full[0]

    async def take(self, camera_id: int, unit_code: str, *, emergency: bool) -> Seat:
        over = self.check(camera_id, unit_code, emergency=emergency)  # no await in between
        seat = Seat(camera_id, unit_code, over)
        self.held[seat.id] = seat
        return seat

    async def give_back(self, seat: Seat) -> None:
        self.held.pop(seat.id, None)
