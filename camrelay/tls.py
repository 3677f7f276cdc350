"""The listener's TLS context from the settings (one process, or the front)."""

from __future__ import annotations

import ssl

from camrelay.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    server = settings.server
    if server.tls_cert is None or server.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(server.tls_cert), str(server.tls_key))
    return context
