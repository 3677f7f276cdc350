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
from urllib.parse import urlsplit

from camrelay.onvif.device import read_devices
from camrelay.onvif.discovery import (
    discover_multicast,
    discover_unicast,
    resolve_host,
)
from camrelay.onvif.errors import OnvifError
from camrelay.onvif.models import (
    DEFAULT_PROBE_PORT,
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

    discovered: dict[str, DiscoveredDevice] = {}  # one entry per endpoint reference
    for task in probes:
        for device in task.result():
            discovered.setdefault(device.endpoint_reference, device)
    candidates = await _match(parsed_hosts, list(discovered.values()),
                              keep_unnamed=bool(cidrs) or multicast)
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


def _xaddr_ports(device: DiscoveredDevice, names: set[str]) -> set[int]:
    """Ports of the device's XAddrs on one of ``names`` (its address, the name given)."""
    ports = set()
    for xaddr in device.xaddrs:
        parts = urlsplit(xaddr)
        if (parts.hostname or "").lower() in names:
            ports.add(parts.port or (443 if parts.scheme == "https" else 80))
    return ports


async def _match(parsed_hosts: Sequence[tuple[str, int | None]],
                 discovered: Sequence[DiscoveredDevice], *, keep_unnamed: bool,
                 ) -> dict[tuple[str, int], DiscoveredDevice | None]:
    """Which answer belongs to which device: ``(host, port)`` -> its answer, or None.

    Several devices may answer from one IP address (port forwarding, the channels of an
    encoder), so an answer belongs to ``HOST:PORT`` only if one of its XAddrs is on that
    host and port -- or, behind NAT (XAddrs on an inside address), if it is the only
    such answer from the address.  ``HOST`` without a port takes every answer from its
    address, each at its own port.  Answers nobody named are kept only for a CIDR or
    multicast search.
    """
    candidates: dict[tuple[str, int], DiscoveredDevice | None] = {}
    claimed: set[str] = set()
    for host, port in parsed_hosts:
        address = await resolve_host(host)
        names = {host.lower(), address} if address is not None else {host.lower()}
        mine = [d for d in discovered if address is not None and d.source == address]
        if port is None:
            for device in mine:
                if device.endpoint_reference not in claimed:
                    claimed.add(device.endpoint_reference)
                    candidates.setdefault((host, device.port), device)
            if not mine:
                candidates.setdefault((host, 80), None)
            continue
        match = next((d for d in mine if port in _xaddr_ports(d, names)), None)
        if match is None:
            behind_nat = [d for d in mine if not _xaddr_ports(d, names)]
            match = behind_nat[0] if len(behind_nat) == 1 else None
        if match is not None:
            if match.endpoint_reference in claimed:
                continue  # the same device named twice (a name and its address): read once
            claimed.add(match.endpoint_reference)
        candidates.setdefault((host, port), match)
    for device in discovered:
        if device.endpoint_reference in claimed:
            continue
        if keep_unnamed:
            candidates.setdefault((device.source, device.port), device)
        else:
            _LOGGER.info("discover: %s also answered from %s (%s); not asked for",
                         device.endpoint_reference, device.source,
                         " ".join(device.xaddrs) or "no XAddrs")
    return candidates


def _sort_key(key: tuple[str, int]) -> tuple[int, str, int]:
    import ipaddress

    host, port = key
    try:
        address = ipaddress.ip_address(host)
        return (address.version, f"{int(address):039d}", port)
    except ValueError:
        return (9, host, port)
