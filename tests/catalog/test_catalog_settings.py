"""Settings: TOML + environment validated at load; the example documents every key; HTTPS."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ipaddress
import re
import ssl
import typing
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from camrelay.errors import ConfigError
from camrelay.settings import Settings, load_settings
from camrelay.store import Store
from tests.catalog.conftest import run_cli
from tests.conftest import World
from tests.servers import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "camrelay.example.toml"


@pytest.fixture
def backend() -> str:
    return "sqlite"


def load(toml: str | None, tmp_path: Path, **env: str) -> Settings:
    path = None
    if toml is not None:
        path = tmp_path / "camrelay.toml"
        path.write_text(toml, encoding="utf-8")
    return load_settings(path, env={"CAMRELAY_" + k.upper(): v for k, v in env.items()})


def test_no_file_gives_the_embedded_defaults(tmp_path: Path) -> None:
    settings = load_settings(env={})
    assert settings == Settings()
    assert settings.server.listen == "127.0.0.1:8080"
    assert settings.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert settings.effective_database_url.endswith("camrelay-data/camrelay.db")


def test_file_and_environment(tmp_path: Path) -> None:
    settings = load(
        '[server]\nlisten = "127.0.0.1:9000"\nmax_body_bytes = 1024\n'
        '[catalog]\ncategories = ["高速", "bridge"]\nvisibility = "subtree"\n'
        '[log]\nlevel = "debug"\n', tmp_path,
        server__listen="127.0.0.1:9100", relay__linger_seconds="2.5",
        catalog__camera_types="fixed, ptz", data_dir=str(tmp_path / "d"))
    assert settings.server.listen == "127.0.0.1:9100"  # the environment wins
    assert settings.server.max_body_bytes == 1024
    assert settings.relay.linger_seconds == 2.5
    assert settings.catalog.categories == ["高速", "bridge"]
    assert settings.catalog.camera_types == ["fixed", "ptz"]
    assert settings.log.level == "DEBUG"
    assert settings.data_dir == tmp_path / "d"
    via_env = load_settings(env={"CAMRELAY_CONFIG": str(tmp_path / "camrelay.toml")})
    assert via_env.server.listen == "127.0.0.1:9000"


@pytest.mark.parametrize(("toml", "env", "message"), [
    ("colour = 1\n", {}, "colour: unknown setting"),
    ("[server]\nport = 1\n", {}, "server.port: unknown setting"),
    ("[server]\nlisten = 8080\n", {}, "server.listen: expected a string"),
    (None, {"server__listen": "localhost"}, "server.listen: expected HOST:PORT"),
    (None, {"server__listen": "127.0.0.1:70000"}, "server.listen: expected HOST:PORT"),
    (None, {"server__max_body_bytes": "lots"}, "server.max_body_bytes: expected a number"),
    (None, {"relay__linger_seconds": "-1"}, "relay.linger_seconds: must not be negative"),
    (None, {"server__allow_plain_http": "perhaps"}, "server.allow_plain_http: expected true"),
    (None, {"log__level": "chatty"}, "log.level: must be one of DEBUG, INFO, WARNING, ERROR"),
    (None, {"catalog__visibility": "all"}, "catalog.visibility: must be one of platform"),
    (None, {"relay__rtsp_client": "gstreamer"}, "relay.rtsp_client: must be one of native, ffm"),
    ("server = 3\n", {}, "server: expected a table"),
    ("[server\n", {}, "is not valid TOML"),
    (None, {"server__tls_cert": "/nonexistent/cert.pem"}, "give both or neither"),
    (None, {"server__tls_cert": "/nonexistent/c.pem", "server__tls_key": "/nonexistent/k.pem"},
     "/nonexistent/c.pem does not exist"),
    (None, {"server__listen": "0.0.0.0:8080"}, "is not a loopback address and no TLS"),
    (None, {"server__listen": "192.0.2.7:8080"}, "server.allow_plain_http = true"),
    (None, {"database_url": "mysql://x/y"}, "database_url: must start with sqlite+aiosqlite"),
    (None, {"server__metrics_addresses": "10.0.0.0/8,not-a-net"},
     "server.metrics_addresses: 'not-a-net' is not an address"),
    ("[catalog]\ncategories = []\n", {}, "catalog.categories: must not be empty"),
    ("[catalog]\ncategories = [1]\n", {}, "catalog.categories[0]: expected a string"),
    ("[relay]\nice_servers = [{ url = 'stun:x' }]\n", {}, "relay.ice_servers[0].url: unknown"),
    ("[relay]\njoin_wait_seconds = 9\n", {}, "relay.join_wait_seconds: must be between 0 and 5"),
])
def test_bad_settings_name_the_key(tmp_path: Path, toml: str | None, env: dict[str, str],
                                   message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(toml, tmp_path, **env)
    assert message in caught.value.detail


def test_missing_file_and_plain_http_when_allowed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", env={})
    settings = load(None, tmp_path, server__listen="0.0.0.0:8080",
                    server__allow_plain_http="true")
    assert settings.server.host == "0.0.0.0" and settings.server.allow_plain_http


def test_secrets_are_masked_in_the_dump(tmp_path: Path) -> None:
    settings = load('[[relay.ice_servers]]\nurls = ["turn:t.example"]\nusername = "u"\n'
                    'credential = "Turn-Canary"\n', tmp_path,
                    credential_key="Key-Canary",
                    database_url="postgresql+asyncpg://camrelay:Db-Canary@db:5432/camrelay")
    dump = repr(settings.redacted()) + repr(settings.relay.ice_servers)
    for canary in ("Turn-Canary", "Key-Canary", "Db-Canary"):
        assert canary not in dump
    assert settings.redacted()["database_url"] == "postgresql+asyncpg://db:5432/camrelay"


def _keys(cls: type[Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        args = typing.get_args(tp)
        inner = args[0] if typing.get_origin(tp) is list and args else tp
        if dataclasses.is_dataclass(inner) and isinstance(inner, type):
            if typing.get_origin(tp) is list:
                out.add(prefix + f.name)
            out |= _keys(inner, f"{prefix}{f.name}.")
        else:
            out.add(prefix + f.name)
    return out


def test_the_example_documents_every_key_with_its_default() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    documented: set[str] = set()
    section = ""
    for line in text.splitlines():
        header = re.match(r"^#?\s*\[\[?([a-z_.]+)\]\]?\s*$", line)
        if header:
            section = header.group(1) + "."
            continue
        key = re.match(r"^#?\s*([a-z_]+)\s*=", line)
        if key:
            documented.add(section + key.group(1))
    missing = _keys(Settings) - documented
    assert not missing, f"config/camrelay.example.toml lacks {sorted(missing)}"
    unknown = documented - _keys(Settings)
    assert not unknown, f"config/camrelay.example.toml documents unknown keys {sorted(unknown)}"
    assert load_settings(EXAMPLE, env={}) == Settings()  # the values shown are the defaults


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "camrelay test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_https_with_a_self_signed_certificate(world: World, settings: Settings,
                                                    tmp_path: Path) -> None:
    from camrelay.server import serve

    cert, key = self_signed(tmp_path)
    port = free_port()
    tls = load_settings(env={"CAMRELAY_DATA_DIR": str(settings.data_dir),
                             "CAMRELAY_SERVER__LISTEN": f"0.0.0.0:{port}",
                             "CAMRELAY_SERVER__TLS_CERT": str(cert),
                             "CAMRELAY_SERVER__TLS_KEY": str(key)})
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(tls, world.store, ready=ready, stop=stop))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        context = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as session:
            async with session.get(f"https://127.0.0.1:{port}/healthz", ssl=context) as r:
                assert r.status == 200
            with pytest.raises(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/healthz") as r:
                    await r.read()
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with session.get(f"https://127.0.0.1:{port}/healthz") as r:
                    await r.read()
        env = {"CAMRELAY_URL": f"https://127.0.0.1:{port}", "CAMRELAY_TOKEN": world.admin_token}
        run = await asyncio.to_thread(run_cli, ["unit", "list", "--json", "--ca-file",
                                                str(cert)], env=env)
        assert run.code == 0 and "330110" in run.out, run
        run = await asyncio.to_thread(run_cli, ["unit", "list"], env=env)
        assert run.code == 1 and "certificate" in run.err and "Traceback" not in run.text
    finally:
        stop.set()
        await task


def test_serve_refuses_plain_http_off_loopback(tmp_path: Path) -> None:
    run = run_cli(["serve", "--data-dir", str(tmp_path), "--listen", "0.0.0.0:8080"])
    assert run.code == 1
    assert "is not a loopback address and no TLS certificate is configured" in run.err
    assert not (tmp_path / "camrelay.db").exists()


async def test_store_open_errors_are_clear(tmp_path: Path) -> None:
    bad = replace(load_settings(env={}), data_dir=tmp_path,
                  database_url=f"postgresql+asyncpg://u:Db-Canary@127.0.0.1:{free_port()}/x")
    with pytest.raises(Exception) as caught:
        await Store.open(bad)
    assert "Db-Canary" not in str(caught.value)
    assert "cannot open the store at postgresql+asyncpg://127.0.0.1" in str(caught.value)
