"""``redis_url`` through Redis Sentinel (camrelay.cluster.redis_link): the URL's parts, its
mistakes as one-line configuration errors, and a real ``redis-server --sentinel`` in front
of a real redis-server, through which a node's client reaches the master."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.sentinel import MasterNotFoundError

from camrelay.cluster.redis_link import REDIS_ERRORS, SentinelTarget, connect, parse_sentinel
from camrelay.errors import ConfigError
from tests import servers


def test_a_sentinel_url_gives_its_sentinels_service_db_password_and_tls() -> None:
    assert parse_sentinel("redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/camrelay") == \
        SentinelTarget((("10.0.0.1", 26379), ("10.0.0.2", 26380)), "camrelay", 0, None, False)
    assert parse_sentinel("rediss+sentinel://:p%40ss%3Aw@[::1]:26379/relay/3") == \
        SentinelTarget((("::1", 26379),), "relay", 3, "p@ss:w", True)
    assert parse_sentinel("redis+sentinel://user:pw@h:1/s/").password == "pw"


@pytest.mark.parametrize(("url", "says"), [
    ("redis://h:26379/camrelay", "starts with redis+sentinel://"),
    ("redis+sentinel://h/camrelay", "each sentinel is host:port"),
    ("redis+sentinel://h:x/camrelay", "each sentinel is host:port"),
    ("redis+sentinel://h:1,:2/camrelay", "each sentinel is host:port"),
    ("redis+sentinel://h:26379", "ends with /service or /service/db"),
    ("redis+sentinel://h:26379/camrelay/db", "ends with /service or /service/db"),
    ("redis+sentinel://h:26379/camrelay/0/1", "ends with /service or /service/db"),
])
def test_a_malformed_sentinel_url_is_a_configuration_error(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_sentinel(url)
    assert says in err.value.detail


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[tuple[servers.RedisServer, int]]:
    """A redis-server and a sentinel that monitors it as master ``camrelay``."""
    with servers.redis_server() as master:
        port = servers.free_port()
        conf = tmp_path / "sentinel.conf"  # the sentinel rewrites its file: a private one
        conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                        f"sentinel monitor camrelay 127.0.0.1 {master.port} 1\n",
                        encoding="utf-8")
        proc = subprocess.Popen(["redis-server", str(conf), "--sentinel"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            servers._wait_port(port, proc, "redis sentinel")
            yield master, port
        finally:
            proc.terminate()
            proc.wait(timeout=30)


async def test_a_node_reaches_the_master_through_a_real_sentinel(
        sentinel: tuple[servers.RedisServer, int]) -> None:
    master, port = sentinel
    client = connect(f"redis+sentinel://127.0.0.1:{port}/camrelay/2", timeout=2.0)
    direct = Redis.from_url(f"redis://127.0.0.1:{master.port}/2", decode_responses=True)
    try:
        await client.set("camrelay:lease:camera:7", "node-1", px=5000)
        assert await direct.get("camrelay:lease:camera:7") == "node-1"  # on the master, db 2
        await direct.set("camrelay:probe", "from the master")
        assert await client.get("camrelay:probe") == "from the master"
    finally:
        await client.aclose()
        await direct.aclose()
    wrong = connect(f"redis+sentinel://127.0.0.1:{port}/nosuchservice", timeout=2.0)
    try:
        with pytest.raises(MasterNotFoundError, match="nosuchservice") as err:
            await wrong.get("x")
        assert isinstance(err.value, REDIS_ERRORS)  # to a node: Redis does not answer
    finally:
        await wrong.aclose()
