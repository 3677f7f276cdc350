"""Keep secrets out of everything that is printed: URLs, error messages, log lines.

FFmpeg, zeep and aiohttp put whole URLs, passwords included, into their messages;
every such message passes through :func:`redact_text` before it is logged or shown.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit, urlunsplit

MASK = "***"

# scheme://user:pass@host  or  scheme://user@host
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/@\s'\"]+)@")


def strip_credentials(url: str) -> str:
    """Return ``url`` without its ``user:password@`` part."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # e.g. a port out of range: still never print the user-info
        return redact_text(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """Split ``rtsp://user:pass@host/path`` into the bare URL, user and password."""
    from urllib.parse import unquote

    parts = urlsplit(url)
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return strip_credentials(url), user, password


def redact_text(text: str, *secrets: str | None) -> str:
    """Mask URL user-info and every given secret in free text."""
    out = _USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", text)
    for secret in secrets:
        if secret:
            out = out.replace(secret, MASK)
            # FFmpeg and URL libraries may show the percent-encoded form
            from urllib.parse import quote

            encoded = quote(secret, safe="")
            if encoded != secret:
                out = out.replace(encoded, MASK)
    return out
