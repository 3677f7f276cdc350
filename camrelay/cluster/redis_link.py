"""The Redis connection of a cluster node, from ``redis_url`` (redis-py; this module is
imported only when ``redis_url`` is set).

* ``redis://[:password@]host:port/db`` and ``rediss://…`` (TLS): one Redis server;
* ``redis+sentinel://[:password@]host:port[,host:port…]/service[/db]`` (``rediss+sentinel``
  for TLS): Redis Sentinel through redis-py's ``Sentinel``, which asks the sentinels for
  the current master of ``service`` and follows a failover.  The password, if any, is the
  master's and the sentinels'.

Redis Cluster (sharded) is not supported: the lease renewal extends all of a node's
leases in one script.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from redis.exceptions import RedisError

from camrelay.errors import ConfigError

if TYPE_CHECKING:
    from redis.asyncio import Redis

REDIS_ERRORS = (RedisError, OSError, TimeoutError)  # what a Redis call raises when down


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    password: str | None
    tls: bool


def parse_sentinel(url: str) -> SentinelTarget:
    """``redis+sentinel://[:pw@]h1:p1,h2:p2/service[/db]`` as its parts."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("redis+sentinel", "rediss+sentinel"):
        raise ConfigError("redis_url: a Sentinel URL starts with redis+sentinel://")
    netloc, _, path = rest.partition("/")
    password = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        password = unquote(userinfo.partition(":")[2]) or None
    hosts = []
    for one in netloc.split(","):
        host, colon, port = one.rpartition(":")
        if not colon or not port.isdigit() or not host:
            raise ConfigError("redis_url: each sentinel is host:port")
        hosts.append((host.strip("[]"), int(port)))
    parts = [p for p in path.split("/") if p]
    if not parts or len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise ConfigError("redis_url: a Sentinel URL ends with /service or /service/db")
    return SentinelTarget(tuple(hosts), parts[0], int(parts[1]) if len(parts) == 2 else 0,
                          password, scheme.startswith("rediss"))


def connect(url: str, timeout: float) -> Redis:
    """A client (connections are made on first use); ``timeout`` bounds every call."""
    if urlsplit(url).scheme.endswith("+sentinel"):
        from redis.asyncio.sentinel import Sentinel

        target = parse_sentinel(url)
        options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                   "password": target.password, "ssl": target.tls}
        sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=options, **options)
        master: Redis = sentinel.master_for(target.service, db=target.db,
                                            decode_responses=True)
        return master
    from redis.asyncio import Redis

    client: Redis = Redis.from_url(url, decode_responses=True, socket_timeout=timeout,
                                   socket_connect_timeout=timeout)
    return client
