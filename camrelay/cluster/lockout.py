"""Sign-in lockout counters shared by every node of a cluster, in Redis
(implements :class:`camrelay.access.lockout.SharedCounters`).

Under ``camrelay:lockout:``, per account (``user:<name>``) and per client address
(``addr:<address>``): ``fail:<key>`` counts failures (INCR; it expires
``access.lockout.window_seconds`` after the first, so the window is fixed from the first
failure rather than sliding as in one process) and ``lock:<key>`` exists while the key is
locked (PX ``access.lockout.lock_seconds``).  Counting and locking run in one script, so
two nodes counting at once cannot both miss the limit.  Redis unreachable: None, and the
process counts by itself (:class:`camrelay.access.lockout.Lockout`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from camrelay.cluster.redis_link import REDIS_ERRORS

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

FAIL = "camrelay:lockout:fail:"
LOCK = "camrelay:lockout:lock:"

# KEYS: (failures, lock) pairs; ARGV[1]: the window (ms), ARGV[2]: the lock (ms), then
# each pair's limit.  One 0/1 per pair: 1 where this failure locked it.
COUNT = """
local out = {}
for i = 1, #KEYS, 2 do
  local n = redis.call('INCR', KEYS[i])
  if n == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
  local locked = 0
  if n >= tonumber(ARGV[2 + (i + 1) / 2]) and redis.call('EXISTS', KEYS[i + 1]) == 0 then
    redis.call('SET', KEYS[i + 1], '1', 'PX', ARGV[2])
    redis.call('DEL', KEYS[i])
    locked = 1
  end
  out[#out + 1] = locked
end
return out
"""


class RedisCounters:
    def __init__(self, redis: Redis, *, timeout: float) -> None:
        self.redis = redis
        self.timeout = timeout

    async def state(self, keys: Sequence[str]) -> list[tuple[float, int]] | None:
        try:
            async with asyncio.timeout(2 * self.timeout):
                pipe = self.redis.pipeline(transaction=False)
                for key in keys:
                    pipe.pttl(LOCK + key)
                    pipe.get(FAIL + key)
                values = await pipe.execute()
        except REDIS_ERRORS as err:
            self._down(err)
            return None
        return [(max(0, int(values[2 * i])) / 1000, int(values[2 * i + 1] or 0))
                for i in range(len(keys))]

    async def fail(self, counted: Sequence[tuple[str, int]], window_seconds: float,
                   lock_seconds: float) -> list[bool] | None:
        keys = [k for key, _ in counted for k in (FAIL + key, LOCK + key)]
        try:
            async with asyncio.timeout(2 * self.timeout):
                locked = await self.redis.eval(
                    COUNT, len(keys), *keys, int(window_seconds * 1000),
                    int(lock_seconds * 1000), *[limit for _, limit in counted])
        except REDIS_ERRORS as err:
            self._down(err)
            return None
        return [bool(x) for x in locked]

    async def clear(self, key: str) -> bool:
        try:
            async with asyncio.timeout(2 * self.timeout):
                await self.redis.delete(FAIL + key)
        except REDIS_ERRORS as err:
            self._down(err)
            return False
        return True

    def _down(self, err: BaseException) -> None:
        log.warning("sign-in lockout: Redis unreachable (%s); counting in this process",
                    type(err).__name__)
