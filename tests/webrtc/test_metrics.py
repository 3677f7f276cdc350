"""Prometheus semantics of /metrics: counters never fall, the histogram accumulates."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from camrelay.metrics import FIRST_FRAME_BUCKETS, Metrics
from tests.webrtc.conftest import RelayFactory, wait_until
from tests.whep_client import WhepViewer

pytestmark = pytest.mark.netns


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.exposition()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


CAM1 = (("camera", "1"), ("stream", "main"))


async def test_counters_survive_viewers_leaving_and_streams_restarting(
        relay_factory: RelayFactory) -> None:
    metrics = Metrics()
    relay = await relay_factory(metrics=metrics)
    first = [await WhepViewer.connect(relay.http, relay.url, 1, "tok-alice") for _ in range(2)]
    for v in first:
        await v.wait_frames(5, timeout=10)
    while_watching = samples(metrics)
    assert while_watching[("camrelay_webrtc_sessions", ())] == 2
    assert while_watching[("camrelay_time_to_first_frame_seconds_count", ())] == 2
    sent = while_watching[("camrelay_bytes_out_total", ())]
    assert sent > 0
    assert while_watching[("camrelay_upstream_connects_total", CAM1)] == 1
    bytes_in = while_watching[("camrelay_bytes_in_total", CAM1)]

    for v in first:
        await v.close()
    # the stream lingers 0.2 s and stops: its counters are kept as the hub's totals
    await wait_until(lambda: not relay.hub.status(), timeout=5)
    after = samples(metrics)
    assert after[("camrelay_webrtc_sessions", ())] == 0
    assert after[("camrelay_bytes_out_total", ())] >= sent  # fell to 0 when summing live ones
    assert after[("camrelay_time_to_first_frame_seconds_count", ())] == 2

    again = await WhepViewer.connect(relay.http, relay.url, 1, "tok-alice")
    try:
        await again.wait_frames(5, timeout=10)
        restarted = samples(metrics)
    finally:
        await again.close()
    assert restarted[("camrelay_upstream_connects_total", CAM1)] == 2  # not back to 1
    assert restarted[("camrelay_bytes_in_total", CAM1)] > bytes_in
    assert restarted[("camrelay_bytes_out_total", ())] > after[("camrelay_bytes_out_total", ())]
    assert restarted[("camrelay_time_to_first_frame_seconds_count", ())] == 3


async def test_each_running_stream_reports_its_cameras_keyframe_interval(
        relay_factory: RelayFactory) -> None:
    """A technician finds the cameras whose I-frame interval is long (joiners then wait
    or catch up): camera 1 sends a keyframe every 2 s, camera 2 every 4 s."""
    metrics = Metrics()
    relay = await relay_factory(metrics=metrics)
    viewers = [await WhepViewer.connect(relay.http, relay.url, cam, "tok-alice")
               for cam in (1, 2)]
    try:
        key = ("camrelay_keyframe_interval_seconds", CAM1)
        cam2 = ("camrelay_keyframe_interval_seconds", (("camera", "2"), ("stream", "main")))
        await wait_until(lambda: cam2 in samples(metrics), timeout=15)
        got = samples(metrics)
        assert got[key] == pytest.approx(2.0, abs=0.05)
        assert got[cam2] == pytest.approx(4.0, abs=0.05)
    finally:
        for v in viewers:
            await v.close()


def test_first_frame_histogram_accumulates_past_any_sample_window() -> None:
    metrics = Metrics()
    n = 100_001  # the old histogram was rebuilt from the last 100 000 sessions
    for i in range(n):
        metrics.observe_first_media(0.04 if i % 2 else 0.15)
    got = samples(metrics)
    assert got[("camrelay_time_to_first_frame_seconds_count", ())] == n
    assert got[("camrelay_time_to_first_frame_seconds_bucket", (("le", "0.05"),))] == n // 2
    assert got[("camrelay_time_to_first_frame_seconds_bucket", (("le", "+Inf"),))] == n
    bounds = [b for (name, labels) in got if name.endswith("_bucket") for _, b in labels]
    assert len(bounds) == len(FIRST_FRAME_BUCKETS) + 1
