"""A canary camera password searched for everywhere it must never appear.

Every API response (successes and problems), CLI output and error, export file, and the
log at DEBUG level, including the error PyAV/FFmpeg raises for an RTSP URL that carries
the password (redacted at the boundary with ``camrelay.redact.redact_text``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

import av
import pytest
from aiohttp.test_utils import TestClient

from camrelay.redact import redact_text, strip_credentials
from tests.catalog.conftest import Live, run_cli
from tests.conftest import World, auth
from tests.servers import free_port

CANARY = "Redact-Canary-9f3e"  # in URLs
SECRET = "Secret-Canary-K2#@:/"  # as the password field (characters URLs must encode)
SEALED_FORMS = (CANARY, SECRET, quote(SECRET, safe=""))


@pytest.fixture
def backend() -> str:
    return "sqlite"


def clean(text: str) -> None:
    for form in SEALED_FORMS:
        assert form not in text


async def test_no_response_or_log_line_carries_the_password(
        client: TestClient[Any, Any], world: World, live: Live,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    h = auth(world.admin_token)
    camera = {"external_id": "r-1", "name": "泄露测试", "unit": "330100",
              "category": "expressway",
              "main_url": f"rtsp://admin:{CANARY}@10.1.2.3:554/Streaming/Channels/101",
              "sub_url": f"rtsp://admin:{CANARY}@10.1.2.3:554/Streaming/Channels/102",
              "onvif_url": f"http://admin:{CANARY}@10.1.2.3/onvif/device_service"}
    texts: list[str] = []

    async def call(method: str, path: str, **kwargs: Any) -> Any:
        headers = {**h, **kwargs.pop("headers", {})}
        r = await client.request(method, path, headers=headers, **kwargs)
        texts.append(await r.text())
        return r

    r = await call("POST", "/api/v1/cameras", json=camera)
    assert r.status == 201, texts[-1]
    cam_id = (await r.json())["id"]
    assert await world.catalog.stream_credentials(cam_id) == ("admin", CANARY)
    r = await call("PATCH", f"/api/v1/cameras/{cam_id}", json={"password": SECRET})
    assert r.status == 200
    assert await world.catalog.stream_credentials(cam_id) == ("admin", SECRET)
    for path in (f"/api/v1/cameras/{cam_id}", "/api/v1/cameras",
                 "/api/v1/cameras?q=admin", "/api/v1/catalog/export?format=csv",
                 "/api/v1/catalog/export?format=json"):
        assert (await call("GET", path)).status == 200

    # refusals that carry the secret in the offending value
    bad_bodies: list[dict[str, Any]] = [
        {**camera, "external_id": "r-2", "main_url": f"rtsp://u:{SECRET}@h/" + "x" * 1100},
        {**camera, "external_id": "r-2", "password": SECRET * 20},
        {**camera, "external_id": "r-2", "password": SECRET, "latitude": 91},
        {**camera, "external_id": "r-2", "main_url": f"http://u:{CANARY}@10.0.0.1/x"},
        {**camera, "external_id": "r-2", "main_url": f"rtsp://u:{CANARY}@[::1"},
        {**camera, "external_id": "r-2", "onvif_url": f"rtsp://u:{CANARY}@10.0.0.1/x"},
        {**camera, "external_id": "r-2", "sub_url": f"rtsp://u:{CANARY}@10.0.0.1:0/x"},
        {**camera, "external_id": "r-2", "password": [SECRET]},
        {**camera, "external_id": "r-2", "username": SECRET * 20},
        {**camera, "external_id": "r-1"},  # duplicate: a conflict
    ]
    for body in bad_bodies:
        r = await call("POST", "/api/v1/cameras", json=body)
        assert 400 <= r.status < 500, texts[-1]
    r = await call("PATCH", f"/api/v1/cameras/{cam_id}",
                   json={"password": SECRET, "transport": "carrier-pigeon"})
    assert r.status == 422
    r = await call("POST", "/api/v1/cameras", data=f'{{"password": "{SECRET}"'.encode(),
                   headers={**h, "Content-Type": "application/json"})
    assert r.status == 400
    r = await call("POST", "/api/v1/catalog/import", json={"rows": [
        {"line": 2, "fields": {**camera, "external_id": "r-3", "password": SECRET}},
        {"line": 3, "fields": {**camera, "external_id": "r-4", "latitude": 99,
                               "password": SECRET}},
        {"line": 4, "fields": {**camera, "external_id": "r-5", "main_url": f"ftp://u:{SECRET}@x/"}},
    ], "skip_invalid": True})
    assert r.status == 200 and (await r.json())["added"] == 1

    # the CLI: listings, show, export and an error, all against the live server
    for args in (["camera", "show", str(cam_id)], ["camera", "show", str(cam_id), "--json"],
                 ["camera", "list"], ["camera", "list", "--json"],
                 ["catalog", "export"], ["catalog", "export", "--format", "json"],
                 ["camera", "add", "--name", "x", "--unit", "330100", "--category",
                  "expressway", "--main-url", f"rtsp://u:{CANARY}@10.0.0.1:99999/x"],
                 ["camera", "update", str(cam_id), "--lat", "95", "--password-stdin"]):
        run = await asyncio.to_thread(run_cli, args, env=live.env, input=SECRET + "\n")
        assert "Traceback" not in run.text
        texts.append(run.text)
    assert texts[-1].startswith("camrelay: error: latitude")

    for text in texts:
        clean(text)
    clean(caplog.text)
    assert "10.1.2.3" in "".join(texts)  # the addresses are there, only without user-info


def test_pyav_errors_are_redacted_at_the_boundary(caplog: pytest.LogCaptureFixture) -> None:
    """FFmpeg puts the whole URL, password included, into its error messages."""
    caplog.set_level(logging.DEBUG)
    from camrelay.relay.sources import ffmpeg  # installs the libav log filter

    url = f"rtsp://admin:{quote(SECRET, safe='')}@127.0.0.1:{free_port()}/Streaming/101"
    av.logging.set_level(av.logging.DEBUG)
    try:
        with pytest.raises(av.error.FFmpegError) as caught:
            av.open(url, options={"rtsp_transport": "tcp", "timeout": "2000000"}, timeout=2)
    finally:
        av.logging.set_level(None)
    raw = str(caught.value)
    assert quote(SECRET, safe="") in raw  # the reason for all this
    redacted = redact_text(raw, SECRET)
    clean(redacted)
    assert "rtsp://***@127.0.0.1" in redacted
    clean(redact_text(raw))  # user-info goes even when the secret is not known
    clean(strip_credentials(url))
    spec = type("Spec", (), {"url": strip_credentials(url), "password": SECRET})()
    error = ffmpeg.map_error(caught.value, spec)  # type: ignore[arg-type]
    clean(error.detail)
    logging.getLogger("camrelay.test").debug("source failed: %s", redact_text(raw, SECRET))
    clean(caplog.text)


def test_redact_text_masks_every_form() -> None:
    text = (f"open rtsp://admin:{SECRET}@h/x failed; retry rtsp://admin:{quote(SECRET, safe='')}"
            f"@h/x; http://u:{CANARY}@h; password={SECRET}")
    out = redact_text(text, SECRET, CANARY)
    clean(out)
    assert out.count("***") >= 3
    assert strip_credentials(f"rtsp://admin:{CANARY}@[fe80::1]:554/x") == "rtsp://[fe80::1]:554/x"
    clean(strip_credentials(f"rtsp://admin:{CANARY}@[::1"))
