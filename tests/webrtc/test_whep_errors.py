"""WHEP refusals: each one a problem response, in the documented order, nothing leaked."""

from __future__ import annotations

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from camrelay.errors import BadRequest
from camrelay.web.sdp import check_offer
from tests.webrtc.conftest import Relay

pytestmark = pytest.mark.netns

PROBLEM = "application/problem+json"


async def real_offer() -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


async def post(relay: Relay, camera: str, body: str | bytes, *,
               content_type: str = "application/sdp", token: str = "tok-alice",
               query: str = "") -> tuple[int, dict[str, object], dict[str, str]]:
    async with relay.http.post(f"{relay.url}/whep/{camera}{query}", data=body,
                               headers={"Content-Type": content_type,
                                        "Authorization": f"Bearer {token}"}) as r:
        assert r.headers["Content-Type"].startswith(PROBLEM), await r.text()
        return r.status, await r.json(content_type=None), dict(r.headers)


def no_leaks(relay: Relay) -> None:
    assert len(relay.egress) == 0
    assert relay.open_subscriptions() == 0
    assert relay.gate.open_views() == []


def drop_h264(sdp: str) -> str:
    lines = sdp.splitlines()
    h264 = {line.split(":")[1].split()[0] for line in lines if "H264/90000" in line}
    out = []
    for line in lines:
        if any(line.startswith(f"a={k}:{pt}") for k in ("rtpmap", "fmtp", "rtcp-fb")
               for pt in h264):
            continue
        out.append(line)
    return "\r\n".join(out) + "\r\n"


@pytest.mark.parametrize("mangle, detail", [
    (lambda s: "hello, I am not SDP", "not of the form"),
    (lambda s: "", "empty"),
    (lambda s: s[: len(s) // 2], None),  # truncated
    (lambda s: s[: s.index("a=fingerprint") + 16], None),  # cut inside the fingerprint
    (lambda s: s[: s.index("m=video")], "no video"),
    (lambda s: s.replace("m=video", "m=audio"), "no video"),
    (lambda s: s.replace("a=ice-ufrag", "a=x-ufrag"), "ice-ufrag"),
    (drop_h264, "H.264"),
    (lambda s: s.replace("v=0", "v=1"), "v=0"),
    (lambda s: "\r\n".join(line for line in s.splitlines() if not line.startswith("t=")),
     "timing"),
    (lambda s: s + "a=candidate:garbage\r\n", "candidate"),
    (lambda s: s.replace("UDP/TLS/RTP/SAVPF", "RTP/AVP"), "SAVPF"),
    (lambda s: s + "a=" + "x" * 70_000 + "\r\n", "larger"),
])
async def test_bad_sdp_is_400(relay: Relay, mangle: object, detail: str | None) -> None:
    offer = mangle(await real_offer())  # type: ignore[operator]
    status, problem, _ = await post(relay, "1", offer)
    assert status == 400, problem
    assert problem["title"] == "Bad request"
    if detail:
        assert detail in str(problem["detail"])
    no_leaks(relay)


async def test_aiortc_parse_failures_are_400_not_500(relay: Relay) -> None:
    # passes the structural check but breaks aiortc (bad int parameter)
    offer = (await real_offer()).replace("a=rtcp:9 IN IP4 0.0.0.0", "a=rtcp:notaport IN IP4 x")
    offer = offer.replace("a=ssrc:", "a=ssrc:x")
    status, problem, _ = await post(relay, "1", offer)
    assert status == 400, problem
    no_leaks(relay)


async def test_wrong_content_type_is_415(relay: Relay) -> None:
    status, _, _ = await post(relay, "1", await real_offer(),
                              content_type="application/json")
    assert status == 415
    no_leaks(relay)


@pytest.mark.parametrize("camera", ["404", "abc", "0", "-1", "99999999999999"])
async def test_unknown_camera_is_404(relay: Relay, camera: str) -> None:
    status, problem, _ = await post(relay, camera, "garbage", content_type="text/plain")
    assert status == 404  # before the content type and the SDP are looked at
    assert problem["title"] == "Camera not found"
    no_leaks(relay)


async def test_denied_camera_is_403_before_anything_else(relay: Relay) -> None:
    status, _, _ = await post(relay, "13", "garbage", content_type="text/plain")
    assert status == 403


async def test_no_principal_is_401(relay: Relay) -> None:
    status, _, _ = await post(relay, "1", await real_offer(), token="nope")
    assert status == 401


async def test_unreachable_source_is_503_with_retry_after(relay: Relay) -> None:
    status, problem, headers = await post(relay, "9", await real_offer())
    assert status == 503
    assert problem["reason"] == "unreachable"
    assert int(headers["Retry-After"]) > 0
    no_leaks(relay)
    assert relay.gate.views[-1].closed == "refused: 503"


async def test_bad_stream_query_is_400(relay: Relay) -> None:
    status, _, _ = await post(relay, "1", await real_offer(), query="?stream=hd")
    assert status == 400
    no_leaks(relay)


async def test_patch_is_405(relay: Relay) -> None:
    async with relay.http.patch(f"{relay.url}/whep/1/sessions/abc", data="a=candidate",
                                headers={"Content-Type": "application/trickle-ice-sdpfrag",
                                         "Authorization": "Bearer tok-alice"}) as r:
        assert r.status == 405
        assert "DELETE" in r.headers["Allow"]


async def test_cors_preflight_and_exposed_headers(relay: Relay) -> None:
    origin = "http://console.test"
    async with relay.http.options(f"{relay.url}/whep/1", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"}) as r:
        assert r.status == 204
        assert r.headers["Accept-Post"] == "application/sdp"
        assert r.headers["Access-Control-Allow-Origin"] == origin
        assert "POST" in r.headers["Access-Control-Allow-Methods"]
        allowed = r.headers["Access-Control-Allow-Headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
    async with relay.http.options(f"{relay.url}/whep/1/sessions/x",
                                  headers={"Origin": origin}) as r:
        assert r.status == 204
        assert "DELETE" in r.headers["Access-Control-Allow-Methods"]
    async with relay.http.options(f"{relay.url}/whep/1",
                                  headers={"Origin": "http://evil.test"}) as r:
        assert "Access-Control-Allow-Origin" not in r.headers
    # errors carry CORS headers too, so a console can show the problem
    status, _, _ = await post(relay, "404", "x")
    assert status == 404
    async with relay.http.post(f"{relay.url}/whep/9", data=await real_offer(), headers={
            "Origin": origin, "Content-Type": "application/sdp",
            "Authorization": "Bearer tok-alice"}) as r:
        assert r.status == 503
        assert r.headers["Access-Control-Allow-Origin"] == origin
        assert "Location" in r.headers["Access-Control-Expose-Headers"]


def test_check_offer_accepts_a_real_browser_like_offer() -> None:
    offer = (
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        "a=group:BUNDLE 0\r\n"
        "a=fingerprint:sha-256 AB:CD:EF\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\n"
        "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\na=setup:actpass\r\n"
        "a=mid:0\r\na=recvonly\r\na=rtcp-mux\r\n"
        "a=rtpmap:96 H264/90000\r\n"
        "a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
        "a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n"
    )
    assert check_offer(offer.encode()) == offer
    with pytest.raises(BadRequest):
        check_offer(offer.encode()[:-40] + b"\xff")
