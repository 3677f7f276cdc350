"""The one place that imports onvif-zeep-async and zeep, and tames their side effects.

The import is deferred to the first use (``_lib.ONVIFCamera`` etc., PEP 562): zeep,
lxml, httpx and the ONVIF WSDL machinery are ~20 MB of resident memory that a relay
which never talks ONVIF should not pay.  :func:`load` imports them off the event loop
when a caller wants to avoid the ~0.2 s import on the loop thread.

* ``onvif.client`` calls ``logging.basicConfig(level=INFO)`` at import, which would
  install a root handler before camrelay configures logging; a temporary NullHandler on
  the root logger makes that call a no-op.
* zeep and the onvif aiohttp transport log whole SOAP envelopes (with WS-Security
  tokens) at DEBUG; their loggers are capped at INFO so ``--debug`` never prints them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

_NAMES = frozenset([
    "Fault",
    "ONVIFAuthError",
    "ONVIFCamera",
    "ONVIFError",
    "ONVIFService",
    "ONVIFTimeoutError",
    "TransportError",
    "XMLParseError",
    "XMLSyntaxError",
    "is_auth_error",
])

_names: dict[str, Any] = {}
_lock = threading.Lock()


def _import() -> dict[str, Any]:
    with _lock:
        if _names:
            return _names
        root = logging.getLogger()
        guard = logging.NullHandler()
        root.addHandler(guard)
        try:
            from onvif import ONVIFCamera, ONVIFService
            from onvif.exceptions import ONVIFAuthError, ONVIFError, ONVIFTimeoutError
            from onvif.util import is_auth_error
            from zeep.exceptions import Fault, TransportError, XMLParseError, XMLSyntaxError
        finally:
            root.removeHandler(guard)
        for name in ("zeep", "zeep.transports", "onvif", "onvif.zeep_aiohttp",
                     "zeep.wsdl.bindings.soap"):
            logging.getLogger(name).setLevel(logging.INFO)
        # onvif.client logs device answers (which may echo URIs with credentials) at DEBUG
        logging.getLogger("onvif").setLevel(logging.WARNING)
        _names.update(Fault=Fault, ONVIFAuthError=ONVIFAuthError, ONVIFCamera=ONVIFCamera,
                      ONVIFError=ONVIFError, ONVIFService=ONVIFService,
                      ONVIFTimeoutError=ONVIFTimeoutError, TransportError=TransportError,
                      XMLParseError=XMLParseError, XMLSyntaxError=XMLSyntaxError,
                      is_auth_error=is_auth_error)
        return _names


async def load() -> None:
    """Import the ONVIF libraries in a thread (once); later attribute access is free."""
    if not _names:
        await asyncio.to_thread(_import)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return (_names or _import())[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
