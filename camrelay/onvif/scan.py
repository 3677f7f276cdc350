"""``camrelay discover`` as a library call: WS-Discovery, then read every device found.

A device that answers discovery but cannot be read (wrong password, not ONVIF after all,
timeout) is reported with its error, never dropped; a host the technician named is read
even when it does not answer the probe (many networks filter UDP 3702).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence

from camrelay.onvif.device import read_devices
from camrelay.onvif.discovery import (
    DEFAULT_PROBE_PORT,
    discover_multicast,
    discover_unicast,
    resolve_host,
)
from camrelay.onvif.errors import OnvifError
from camrelay.onvif.models import (
    Credentials,
    DeviceReport,
    DeviceTarget,
    DiscoveredDevice,
    FoundDevice,
)

_LOGGER = logging.getLogger(__name__)


def parse_host(text: str, default_port: int = 80) -> tuple[str, int | None]:
    """``HOST``, ``HOST:PORT``, ``[V6]:PORT`` or a bare IPv6 address -> (host, port or None).

    Raises ``ValueError`` for a port that is not a number in 1..65535.
    """
    text = text.strip()
    if not text:
        raise ValueError("empty host")
    port_text: str | None = None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host = text
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text}: the port must be a number between 1 and 65535")
    return host, int(port_text)


async def scan(cidrs: Sequence[str] = (), hosts: Sequence[str] = (), multicast: bool = False,
               probe_port: int = DEFAULT_PROBE_PORT, credentials: Credentials | None = None,
               concurrency: int = 32, timeout: float = 3.0, *, interface: str | None = None,
               read: bool = True, read_timeout: float = 20.0) -> list[FoundDevice]:
    """Discover ONVIF devices and read each one; results sorted by address.

    ``timeout`` bounds each discovery probe (and the multicast listening window);
    ``read_timeout`` bounds the reading of one device; ``concurrency`` limits both the
    outstanding probes (x8) and the devices read at once.  Raises ``ValueError`` for a
    bad CIDR or host.
    """
    parsed_hosts = [parse_host(h) for h in hosts]
    probes: list[asyncio.Task[list[DiscoveredDevice]]] = []
    async with asyncio.TaskGroup() as group:
        if cidrs or parsed_hosts:
            probes.append(group.create_task(discover_unicast(
                cidrs=cidrs, hosts=[h for h, _ in parsed_hosts], port=probe_port,
                timeout=timeout, concurrency=max(1, concurrency * 8))))
        if multicast:
            probes.append(group.create_task(discover_multicast(
                interface=interface, port=probe_port, timeout=timeout)))

    explicit_ports = {h: p for h, p in parsed_hosts if p is not None}
    # a device found at the address of a host the technician named keeps that name
    name_by_address: dict[str, str] = {}
    for host, _ in parsed_hosts:
        address = await resolve_host(host)
        if address is not None:
            name_by_address.setdefault(address, host)
    candidates: dict[tuple[str, int], DiscoveredDevice | None] = {}
    seen_eprs: set[str] = set()
    for task in probes:
        for device in task.result():
            if device.endpoint_reference in seen_eprs:
                continue
            seen_eprs.add(device.endpoint_reference)
            host = name_by_address.get(device.source, device.source)
            candidates.setdefault((host, explicit_ports.get(host, device.port)), device)
    answered_hosts = {host for host, _ in candidates}
    for host, port in parsed_hosts:
        if host not in answered_hosts:
            candidates.setdefault((host, port or 80), None)
    _LOGGER.info("discover: %d device(s) to read", len(candidates))

    keys = sorted(candidates, key=_sort_key)
    if not read:
        return [FoundDevice(host=h, port=p, discovery=candidates[(h, p)], report=None)
                for h, p in keys]
    results = await read_devices([DeviceTarget(h, p, credentials) for h, p in keys],
                                 concurrency=concurrency, timeout=read_timeout)
    found = []
    for (host, port), result in zip(keys, results, strict=True):
        discovery = candidates[(host, port)]
        if isinstance(result, DeviceReport):
            if discovery is not None:
                result = dataclasses.replace(result,
                                             endpoint_reference=discovery.endpoint_reference)
            found.append(FoundDevice(host=host, port=port, discovery=discovery, report=result))
        else:
            assert isinstance(result, OnvifError)
            found.append(FoundDevice(host=host, port=port, discovery=discovery, report=None,
                                     error_reason=result.reason, error=result.detail))
    return found


def _sort_key(key: tuple[str, int]) -> tuple[int, str, int]:
    import ipaddress

    host, port = key
    try:
        address = ipaddress.ip_address(host)
        return (address.version, f"{int(address):039d}", port)
    except ValueError:
        return (9, host, port)
