"""The one place that imports onvif-zeep-async and zeep, and tames their side effects.

* ``onvif.client`` calls ``logging.basicConfig(level=INFO)`` at import, which would
  install a root handler before camrelay configures logging; a temporary NullHandler on
  the root logger makes that call a no-op.
* zeep and the onvif aiohttp transport log whole SOAP envelopes (with WS-Security
  tokens) at DEBUG; their loggers are capped at INFO so ``--debug`` never prints them.
"""

from __future__ import annotations

import logging

_root = logging.getLogger()
_guard = logging.NullHandler()
_root.addHandler(_guard)
try:
    import onvif  # noqa: F401
    from onvif import ONVIFCamera, ONVIFService
    from onvif.exceptions import ONVIFAuthError, ONVIFError, ONVIFTimeoutError
    from onvif.util import is_auth_error
    from zeep.exceptions import Fault, TransportError, XMLParseError, XMLSyntaxError
finally:
    _root.removeHandler(_guard)

for _name in ("zeep", "zeep.transports", "onvif", "onvif.zeep_aiohttp", "zeep.wsdl.bindings.soap"):
    logging.getLogger(_name).setLevel(logging.INFO)
# onvif.client logs device answers (which may echo URIs with credentials) at DEBUG too
logging.getLogger("onvif").setLevel(logging.WARNING)

__all__ = [
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
]
