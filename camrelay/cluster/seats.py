"""Live-view seats for the whole cluster (``[limits]`` with ``redis_url``).

Redis holds one sorted set per camera (``camrelay:seats:camera:<id>``) and per viewer
unit (``camrelay:seats:unit:<code>``); a member is one live view's seat, its score the
moment (Redis's clock, ms) it lapses.  :data:`TAKE` drops lapsed seats, counts, and adds
the new one in one script, so two nodes cannot both take the last seat.  Each process
re-adds its seats every heartbeat (:data:`REFRESH`, one script for all of them) with
three heartbeats to live, so the seats of a node that died lapse by themselves; a view's
end removes its seats (ZREM).

Redis unreachable when a view starts: the limits are checked against this process's own
seats (logged); the seat is written to Redis by the next refresh once it answers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from camrelay.access.seats import LocalSeats, Occupancy, Seat, refusal, unit_limit
from camrelay.cluster.redis_link import REDIS_ERRORS
from camrelay.settings import LimitSettings

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

SEATS = "camrelay:seats:"
CAMERA_SEATS = SEATS + "camera:"
UNIT_SEATS = SEATS + "unit:"

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# KEYS: the camera's and the unit's seats; ARGV: seat, ttl ms, per_camera, per_unit,
# emergency ("1").  Returns {limit exceeded or "", seats on the camera, in the unit}
# (after adding the seat, unless refused).
TAKE = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local on_camera = redis.call('ZCARD', KEYS[1])
local in_unit = redis.call('ZCARD', KEYS[2])
local per_camera, per_unit = tonumber(ARGV[3]), tonumber(ARGV[4])
local over = ''
if per_camera > 0 and on_camera >= per_camera then over = 'per_camera'
elseif per_unit > 0 and in_unit >= per_unit then over = 'per_unit' end
if over ~= '' and ARGV[5] ~= '1' then return {over, on_camera, in_unit} end
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return {over, on_camera + 1, in_unit + 1}
"""
# KEYS: seat sets; ARGV[1]: ttl ms, ARGV[1 + i]: the seat in KEYS[i].  Re-adds each seat
# (also one lapsed while Redis was away) with a fresh lapse time.
REFRESH = _NOW + """
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', key, ttl)
end
return #KEYS
"""
class RedisSeats:
    """Implements :class:`camrelay.access.seats.Seats` for the cluster; see the module."""

    def __init__(self, redis: Redis, limits: LimitSettings, *, owner: str, ttl_ms: int) -> None:
        self.redis = redis
        self.limits = limits
        self.owner = owner  # node:proc, the prefix of this process's seat members
        self.ttl_ms = ttl_ms
        self._mine = LocalSeats(limits)

    def local(self) -> Occupancy:
        return self._mine.local()

    def _member(self, seat: Seat) -> str:
        return f"{self.owner}:{seat.id}"

    async def take(self, camera_id: int, unit_code: str, *, emergency: bool) -> Seat:
        seat = Seat(camera_id, unit_code)
        try:
            over, _, _ = await self.redis.eval(
                TAKE, 2, CAMERA_SEATS + str(camera_id), UNIT_SEATS + unit_code,
                self._member(seat), self.ttl_ms, self.limits.per_camera,
                unit_limit(self.limits, unit_code), "1" if emergency else "0")
        except REDIS_ERRORS as err:
            log.warning("[camera %d] limits checked on this node only: Redis unreachable (%s)",
                        camera_id, type(err).__name__)
            over = self._mine.check(camera_id, unit_code, emergency=emergency) or ""
        else:
            if over and not emergency:
                allowed = (self.limits.per_camera if over == "per_camera"
                           else unit_limit(self.limits, unit_code))
                raise refusal(str(over), camera_id=camera_id, unit_code=unit_code,
                              allowed=allowed)
        seat = Seat(camera_id, unit_code, str(over) or None, seat.id)
        self._mine.held[seat.id] = seat
        return seat

    async def give_back(self, seat: Seat) -> None:
        if self._mine.held.pop(seat.id, None) is None:
            return
        member = self._member(seat)
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zrem(CAMERA_SEATS + str(seat.camera_id), member)
            pipe.zrem(UNIT_SEATS + seat.unit_code, member)
            await pipe.execute()
        except REDIS_ERRORS as err:
            log.warning("[camera %d] seat not given back (%s); it lapses by itself",
                        seat.camera_id, type(err).__name__)

    async def refresh(self) -> None:
        """Every heartbeat: keep this process's seats alive (one script for all)."""
        seats = list(self._mine.held.values())
        if not seats:
            return
        keys: list[str] = []
        members: list[str] = []
        for seat in seats:
            for key in (CAMERA_SEATS + str(seat.camera_id), UNIT_SEATS + seat.unit_code):
                keys.append(key)
                members.append(self._member(seat))
        await self.redis.eval(REFRESH, len(keys), *keys, self.ttl_ms, *members)


async def read_occupancy(redis: Redis) -> Occupancy:
    """Live views per camera and per unit, cluster-wide (lapsed seats not counted)."""
    keys = [k async for k in redis.scan_iter(match=SEATS + "*", count=1000)]
    if not keys:
        return Occupancy({}, {})
    seconds, micros = await redis.time()
    now = seconds * 1000 + micros // 1000
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.zcount(key, f"({now}", "+inf")
    counts: list[Any] = await pipe.execute()
    cameras: dict[int, int] = {}
    units: dict[str, int] = {}
    for key, count in zip(keys, counts, strict=True):
        if not count:
            continue
        if key.startswith(CAMERA_SEATS):
            cameras[int(key[len(CAMERA_SEATS):])] = int(count)
        elif key.startswith(UNIT_SEATS):
            units[key[len(UNIT_SEATS):]] = int(count)
    return Occupancy(cameras, units)
