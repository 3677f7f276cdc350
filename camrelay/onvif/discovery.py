"""WS-Discovery (ONVIF Core §7): Probe for network video transmitters, parse ProbeMatches.

Two ways to probe, both on one asyncio datagram endpoint per call:

* multicast to 239.255.255.250:3702 out of the interface whose address is given
  (``IP_MULTICAST_IF``), collecting answers for ``timeout`` seconds;
* directed unicast to given hosts or every address of a CIDR, at most
  ``concurrency`` probes awaiting an answer at once, each for at most ``timeout``.

Answers are untrusted UDP: no DTD (so no entity expansion), matched to a MessageID
we sent through RelatesTo, deduplicated by endpoint reference; anything else is
skipped with a log line, never a traceback.  One address may carry several devices
(each answers with its own endpoint reference and XAddrs), so a directed probe keeps
listening a moment after its first answer; which answer is which device is decided by
the XAddrs (``camrelay.onvif.scan``), never by the address alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from camrelay.onvif.models import DEFAULT_PROBE_PORT, DiscoveredDevice, Scopes

_LOGGER = logging.getLogger(__name__)

MULTICAST_GROUP = "239.255.255.250"
MAX_CIDR_ADDRESSES = 65536

_WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
_WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
_PROBE_ACTION = f"{_WSD}/Probe"

_PROBE_TEMPLATE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"'
    f' xmlns:a="{_WSA}" xmlns:d="{_WSD}"'
    ' xmlns:dn="http://www.onvif.org/ver10/network/wsdl"'
    ' xmlns:tds="http://www.onvif.org/ver10/device/wsdl">'
    "<s:Header>"
    f'<a:Action s:mustUnderstand="1">{_PROBE_ACTION}</a:Action>'
    "<a:MessageID>{message_id}</a:MessageID>"
    f"<a:ReplyTo><a:Address>{_WSA}/role/anonymous</a:Address></a:ReplyTo>"
    '<a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>'
    "</s:Header>"
    "<s:Body><d:Probe><d:Types>{types}</d:Types></d:Probe></s:Body>"
    "</s:Envelope>"
)

DEFAULT_TYPES = "dn:NetworkVideoTransmitter"
"""What we probe for. ``tds:Device`` answers are accepted too (see ``is_video_device``)."""


class MalformedAnswer(ValueError):
    """A datagram on the discovery socket that is not a usable ProbeMatches."""


def new_message_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def build_probe(message_id: str, types: str = DEFAULT_TYPES) -> bytes:
    """The Probe envelope, asking for ``types`` (``dn:NetworkVideoTransmitter``)."""
    return _PROBE_TEMPLATE.format(message_id=message_id, types=types).encode()


@dataclass(frozen=True, slots=True)
class ProbeAnswer:
    """One parsed ProbeMatches datagram: what it relates to and its matches."""

    relates_to: str | None
    action: str | None
    matches: tuple[DiscoveredDevice, ...]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in elem if _local(child.tag) == name]


def _first(elem: ET.Element, name: str) -> ET.Element | None:
    for child in elem.iter():
        if child is not elem and _local(child.tag) == name:
            return child
    return None


def _text(elem: ET.Element | None) -> str:
    return (elem.text or "").strip() if elem is not None else ""


def parse_scopes(raw: Iterable[str]) -> Scopes:
    """``onvif://www.onvif.org/name/Front%20Door`` and friends into a ``Scopes``."""
    scopes = tuple(raw)
    found: dict[str, list[str]] = {}
    for scope in scopes:
        lowered = scope.lower()
        prefix = "onvif://www.onvif.org/"
        if not lowered.startswith(prefix):
            continue
        kind, _, value = scope[len(prefix):].partition("/")
        value = unquote(value.replace("+", " ")).strip().strip("/")
        if value:
            found.setdefault(kind.lower(), []).append(value)
    return Scopes(
        name=" ".join(found["name"]) if "name" in found else None,
        location=", ".join(found["location"]) if "location" in found else None,
        hardware=" ".join(found["hardware"]) if "hardware" in found else None,
        profiles=tuple(found.get("profile", ())),
        raw=scopes,
    )


def _split_xaddrs(text: str) -> tuple[str, ...]:
    """Several space/newline-separated XAddrs; only http(s) URLs, order kept, no repeats."""
    out: list[str] = []
    for token in text.split():
        try:
            parts = urlsplit(token)
            _ = parts.port  # raises on a garbled port
        except ValueError:
            _LOGGER.debug("discovery: skipping unparsable XAddr %r", token[:200])
            continue
        if parts.scheme in ("http", "https") and parts.hostname and token not in out:
            out.append(token)
    return tuple(out)


def parse_probe_matches(data: bytes, source: str) -> ProbeAnswer:
    """Parse one datagram; raises ``MalformedAnswer`` for anything that is not ProbeMatches."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise MalformedAnswer("document type declarations are not allowed")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise MalformedAnswer(f"not XML ({err})") from None
    if _local(root.tag) != "Envelope":
        raise MalformedAnswer(f"not a SOAP envelope (<{_local(root.tag)}>)")
    header = next(iter(_children(root, "Header")), None)
    body = next(iter(_children(root, "Body")), None)
    if body is None:
        raise MalformedAnswer("SOAP envelope without a body")
    relates_to = _text(_first(header, "RelatesTo")) or None if header is not None else None
    action = _text(_first(header, "Action")) or None if header is not None else None
    probe_matches = _first(body, "ProbeMatches")
    if probe_matches is None:
        raise MalformedAnswer(f"not a ProbeMatches message (action {action})")
    matches: list[DiscoveredDevice] = []
    for match in _children(probe_matches, "ProbeMatch"):
        epr = _text(_first(match, "Address"))
        if not epr:
            _LOGGER.debug("discovery: ProbeMatch from %s without endpoint reference", source)
            continue
        metadata = _text(_first(match, "MetadataVersion"))
        matches.append(
            DiscoveredDevice(
                endpoint_reference=epr,
                xaddrs=_split_xaddrs(_text(_first(match, "XAddrs"))),
                types=tuple(_text(_first(match, "Types")).split()),
                scopes=parse_scopes(_text(_first(match, "Scopes")).split()),
                metadata_version=int(metadata) if metadata.isdigit() else None,
                source=source,
            )
        )
    return ProbeAnswer(relates_to=relates_to, action=action, matches=tuple(matches))


def is_video_device(device: DiscoveredDevice) -> bool:
    """True for a NetworkVideoTransmitter or a plain ONVIF ``Device`` (prefix ignored)."""
    local = {t.rsplit(":", 1)[-1] for t in device.types}
    return bool(local & {"NetworkVideoTransmitter", "Device"}) or not device.types


async def resolve_host(host: str) -> str | None:
    """An IP literal as is; a name resolved off the event loop (None if it does not resolve)."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    last: OSError | None = None
    for family in (socket.AF_INET, socket.AF_UNSPEC):  # IPv4 first, as cameras are
        try:
            infos = await loop.getaddrinfo(host, None, family=family, type=socket.SOCK_DGRAM)
        except OSError as err:
            last = err
            continue
        if infos:
            return str(infos[0][4][0])
    _LOGGER.warning("discovery: cannot resolve %s: %s", host, last)
    return None


def expand_targets(cidrs: Iterable[str] = (), hosts: Iterable[str] = (),
                   port: int = DEFAULT_PROBE_PORT) -> list[tuple[str, int]]:
    """Addresses to probe: every host address of each CIDR plus each host, deduplicated.

    Raises ``ValueError`` for a CIDR that is not one, or larger than 65536 addresses.
    """
    out: dict[tuple[str, int], None] = {}
    for cidr in cidrs:
        network = ipaddress.ip_network(cidr, strict=False)
        if network.num_addresses > MAX_CIDR_ADDRESSES:
            raise ValueError(f"{cidr} has {network.num_addresses} addresses; "
                             f"split it into ranges of at most {MAX_CIDR_ADDRESSES}")
        addresses = list(network.hosts()) or [network.network_address]
        for addr in addresses:
            out[(str(addr), port)] = None
    for host in hosts:
        out[(host, port)] = None
    return list(out)


@dataclass
class _Collector:
    """Receives datagrams for one probe run; the only owner of its bookkeeping."""

    sent: dict[str, tuple[str, int] | None] = field(default_factory=dict)
    """MessageID -> destination (None for multicast)."""
    answered: dict[str, asyncio.Event] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    queue: asyncio.Queue[DiscoveredDevice] = field(default_factory=asyncio.Queue)
    probed_hosts: set[str] = field(default_factory=set)

    def datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        source = addr[0]
        try:
            answer = parse_probe_matches(data, source)
        except MalformedAnswer as err:
            _LOGGER.warning("discovery: ignoring a malformed answer from %s: %s", source, err)
            return
        if answer.relates_to is None:
            if source not in self.probed_hosts:
                _LOGGER.debug("discovery: ignoring an answer from %s without RelatesTo", source)
                return
        elif answer.relates_to not in self.sent:
            _LOGGER.debug("discovery: ignoring an answer from %s to a probe we did not send",
                          source)
            return
        else:
            event = self.answered.get(answer.relates_to)
            if event is not None:
                event.set()
        for device in answer.matches:
            if device.endpoint_reference in self.seen or not is_video_device(device):
                continue
            self.seen.add(device.endpoint_reference)
            self.queue.put_nowait(device)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, tuple[str, int]], None]) -> None:
        self._on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._on_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        _LOGGER.debug("discovery: socket error: %s", exc)


def _family_of(address: str) -> socket.AddressFamily:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET


async def _drain(collector: _Collector, done: asyncio.Future[Any]) -> AsyncGenerator[
        DiscoveredDevice, None]:
    """Yield devices as they arrive until ``done`` completes and the queue is empty."""
    while True:
        if done.done() and collector.queue.empty():
            return
        getter: asyncio.Future[Any] = asyncio.ensure_future(collector.queue.get())
        try:
            await asyncio.wait([getter, done], return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await getter
        if getter.done() and not getter.cancelled():
            yield getter.result()


async def iter_multicast(*, interface: str | None = None, port: int = DEFAULT_PROBE_PORT,
                         timeout: float = 3.0, group: str = MULTICAST_GROUP,
                         types: str = DEFAULT_TYPES) -> AsyncGenerator[DiscoveredDevice, None]:
    """Probe by multicast out of ``interface`` (an IPv4 address); yield devices as they answer.

    Stops after ``timeout`` seconds; break out of the loop to stop early.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        if interface:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                            socket.inet_aton(interface))
        sock.bind((interface or "0.0.0.0", 0))
    except OSError:
        sock.close()
        raise
    collector = _Collector()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Protocol(collector.datagram), sock=sock)
    try:
        message_id = new_message_id()
        collector.sent[message_id] = None
        _LOGGER.info("discovery: multicast probe to %s:%d via %s", group, port,
                     interface or "the default interface")
        transport.sendto(build_probe(message_id, types), (group, port))
        done: asyncio.Future[None] = loop.create_future()

        def finish() -> None:
            if not done.done():
                done.set_result(None)

        timer = loop.call_later(timeout, finish)
        try:
            async for device in _drain(collector, done):
                yield device
        finally:
            timer.cancel()
    finally:
        transport.close()


ANSWER_WINDOW = 0.25
"""Seconds a directed probe keeps listening after its first answer: several devices may
answer from one address (port-forwarded cameras behind one router, encoder channels)."""


async def iter_unicast(targets: Sequence[tuple[str, int]], *, timeout: float = 2.0,
                       concurrency: int = 256, types: str = DEFAULT_TYPES,
                       answer_window: float = ANSWER_WINDOW,
                       ) -> AsyncGenerator[DiscoveredDevice, None]:
    """Send a directed Probe to each ``(address, port)``; yield devices as they answer.

    At most ``concurrency`` probes await an answer at once, each for at most ``timeout``
    seconds, and for ``answer_window`` more (within ``timeout``) after the first answer,
    for other devices behind the same address; the run ends as soon as every target has
    done so or timed out.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    loop = asyncio.get_running_loop()
    collector = _Collector()
    resolved: list[tuple[str, int]] = []
    for host, port in targets:
        address = await resolve_host(host)
        if address is not None:
            resolved.append((address, port))
    targets = resolved
    collector.probed_hosts.update(host for host, _ in targets)
    semaphore = asyncio.Semaphore(concurrency)
    transports: dict[socket.AddressFamily, asyncio.DatagramTransport] = {}
    try:
        for family in {_family_of(host) for host, _ in targets}:
            local = "::" if family == socket.AF_INET6 else "0.0.0.0"
            transports[family], _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(collector.datagram), local_addr=(local, 0), family=family)
    except OSError:
        for transport in transports.values():
            transport.close()
        raise

    async def probe_one(target: tuple[str, int]) -> None:
        async with semaphore:
            message_id = new_message_id()
            event = asyncio.Event()
            collector.sent[message_id] = target
            collector.answered[message_id] = event
            try:
                transports[_family_of(target[0])].sendto(build_probe(message_id, types), target)
            except OSError as err:
                _LOGGER.debug("discovery: cannot send to %s:%d: %s", target[0], target[1], err)
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await event.wait()
                    await asyncio.sleep(answer_window)  # the other devices at this address

    _LOGGER.info("discovery: directed probes to %d address(es), %d at a time",
                 len(targets), concurrency)
    try:
        runner = asyncio.gather(*(probe_one(t) for t in targets))
        try:
            async for device in _drain(collector, runner):
                yield device
        finally:
            if not runner.done():
                runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
    finally:
        for transport in transports.values():
            transport.close()


async def discover_multicast(*, interface: str | None = None, port: int = DEFAULT_PROBE_PORT,
                             timeout: float = 3.0) -> list[DiscoveredDevice]:
    """Every device answering a multicast probe within ``timeout`` seconds."""
    async with contextlib.aclosing(iter_multicast(interface=interface, port=port,
                                                  timeout=timeout)) as devices:
        return [device async for device in devices]


async def discover_unicast(*, cidrs: Iterable[str] = (), hosts: Iterable[str] = (),
                           port: int = DEFAULT_PROBE_PORT, timeout: float = 2.0,
                           concurrency: int = 256) -> list[DiscoveredDevice]:
    """Every device answering a directed probe to the given hosts and CIDR ranges."""
    targets = expand_targets(cidrs, hosts, port)
    async with contextlib.aclosing(iter_unicast(targets, timeout=timeout,
                                                concurrency=concurrency)) as devices:
        return [device async for device in devices]
