"""Prometheus metrics: one registry per process, filled from the relay's own counters.

The relay keeps plain integers (the hub's per-stream totals, the egress' bytes sent) and
never imports this module; collectors read those totals at scrape time, so nothing is
done per packet for the metrics.  Counters are totals since the process started and
never fall: a stream that stops hands its counts to the hub's retired totals, a viewer
that leaves hands its bytes to the egress.  The first-frame histogram is observed once
per session and accumulates for ever (fixed buckets, no sample list).

With worker processes every worker answers its own ``/metrics`` and the front merges
them, adding ``worker="k"`` to every sample (``camrelay.cluster.merge``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

import prometheus_client
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from camrelay.relay.hub import StreamStatus

__all__ = ["CONTENT_TYPE", "FIRST_FRAME_BUCKETS", "Metrics", "WorkerState", "front_exposition"]

# no *_created samples: camrelay's counters start with the process, like its uptime
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FIRST_FRAME_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)


class HubLike(Protocol):
    def status(self) -> list[StreamStatus]: ...


class EgressLike(Protocol):
    def __len__(self) -> int: ...

    def bytes_sent_total(self) -> int: ...


class _RelayCollector(Collector):
    def __init__(self, hub: HubLike, egress: EgressLike) -> None:
        self._hub = hub
        self._egress = egress

    def collect(self) -> Iterable[Metric]:
        statuses = self._hub.status()
        by_state = Counter(str(s.state) for s in statuses)
        sources = GaugeMetricFamily("camrelay_sources", "Upstream sources by state",
                                    labels=["state"])
        for state, n in sorted(by_state.items()):
            sources.add_metric([state], n)
        yield sources
        yield from _per_stream(statuses)
        yield GaugeMetricFamily("camrelay_webrtc_sessions", "Live WebRTC viewing sessions",
                                value=len(self._egress))
        yield CounterMetricFamily("camrelay_bytes_out", "Media bytes sent to viewers",
                                  value=self._egress.bytes_sent_total())


def _per_stream(statuses: Sequence[StreamStatus]) -> Iterator[Metric]:
    labels = ["camera", "stream"]
    counters = (
        ("upstream_connects", "RTSP sessions opened per stream", "upstream_connects"),
        ("reconnects", "Reconnections per stream", "reconnects"),
        ("bytes_in", "Bytes received from cameras", "bytes_in"),
        ("dropped_units", "Access units dropped for slow consumers", "dropped"),
    )
    for name, help_text, attr in counters:
        family = CounterMetricFamily(f"camrelay_{name}", help_text, labels=labels)
        for s in statuses:
            family.add_metric([str(s.key.camera_id), s.key.variant], getattr(s, attr))
        yield family
    viewers = GaugeMetricFamily("camrelay_viewers", "Consumers per stream", labels=labels)
    for s in statuses:
        viewers.add_metric([str(s.key.camera_id), s.key.variant], s.consumers)
    yield viewers
    # a camera whose I-frame interval is long makes joiners wait or catch up (README)
    interval = GaugeMetricFamily(
        "camrelay_keyframe_interval_seconds",
        "The camera's measured keyframe interval per running stream", labels=labels)
    for s in statuses:
        if s.keyframe_interval is not None:
            interval.add_metric([str(s.key.camera_id), s.key.variant], s.keyframe_interval)
    yield interval
    asked = CounterMetricFamily(
        "camrelay_keyframe_requests",
        "Keyframes asked of the camera for joiners mid-GOP, by outcome (answered, missed: "
        "none came in time, failed: the camera refused or did not answer), per running "
        "stream", labels=[*labels, "outcome"])
    for s in statuses:
        for outcome, count in s.keyframe_requests:
            asked.add_metric([str(s.key.camera_id), s.key.variant, outcome], count)
    yield asked


class Metrics:
    """The process' registry.  ``observe_first_media`` is handed to the WebRTC egress."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._first_frame = Histogram(
            "camrelay_time_to_first_frame_seconds", "WHEP offer to first media sent",
            buckets=FIRST_FRAME_BUCKETS, registry=self.registry)

    def observe_first_media(self, seconds: float) -> None:
        self._first_frame.observe(seconds)

    def watch_relay(self, hub: HubLike, egress: EgressLike) -> None:
        self.registry.register(_RelayCollector(hub, egress))

    def exposition(self) -> str:
        return generate_latest(self.registry).decode("utf-8")


class WorkerState(Protocol):
    @property
    def index(self) -> int: ...

    @property
    def up(self) -> bool: ...

    @property
    def restarts(self) -> int: ...


class _FrontCollector(Collector):
    def __init__(self, workers: Sequence[WorkerState]) -> None:
        self._workers = workers

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("camrelay_worker_up", "Worker process serving (1) or not (0)",
                               labels=["worker"])
        restarts = CounterMetricFamily("camrelay_worker_restarts",
                                       "Worker restarts by the supervisor", labels=["worker"])
        for w in self._workers:
            up.add_metric([str(w.index)], int(w.up))
            restarts.add_metric([str(w.index)], w.restarts)
        yield up
        yield restarts


def front_exposition(workers: Sequence[WorkerState]) -> str:
    """The front's own families (already labelled by worker)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_FrontCollector(workers))
    return generate_latest(registry).decode("utf-8")
