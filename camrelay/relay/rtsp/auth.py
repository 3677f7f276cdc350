"""RTSP authentication: Basic (RFC 7617) and Digest with MD5 (RFC 2617 / RFC 7616).

Digest with ``qop=auth`` (or ``auth-int``: RTSP requests carry no body) or without qop,
``MD5`` or ``MD5-sess``.  Pure apart from the random client nonce; the password stays
inside :class:`Authorizer` and never reaches a message.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass

_PARAM = re.compile(r'([A-Za-z][\w-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')
_DIGEST_ALGORITHMS = ("MD5", "MD5-SESS")


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # "basic" or "digest"
    realm: str = ""
    nonce: str = ""
    opaque: str | None = None
    algorithm: str = "MD5"  # upper case
    qop: tuple[str, ...] = ()
    stale: bool = False


def parse_challenge(value: str) -> Challenge | None:
    """One ``WWW-Authenticate`` value; None for a scheme we do not speak."""
    scheme, _, rest = value.strip().partition(" ")
    scheme = scheme.lower()
    if scheme not in ("basic", "digest"):
        return None
    params: dict[str, str] = {}
    for name, raw in _PARAM.findall(rest):
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[name.lower()] = raw
    if scheme == "basic":
        return Challenge("basic", params.get("realm", ""))
    if "nonce" not in params:
        return None
    algorithm = params.get("algorithm", "MD5").upper()
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    return Challenge("digest", params.get("realm", ""), params["nonce"], params.get("opaque"),
                     algorithm, qop, params.get("stale", "").lower() == "true")


def choose_challenge(values: list[str]) -> Challenge | None:
    """The strongest challenge we can answer: Digest (MD5) before Basic."""
    challenges = [c for c in map(parse_challenge, values) if c is not None]
    for challenge in challenges:
        if challenge.scheme == "digest" and challenge.algorithm in _DIGEST_ALGORITHMS and (
                not challenge.qop or {"auth", "auth-int"} & set(challenge.qop)):
            return challenge
    return next((c for c in challenges if c.scheme == "basic"), None)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Authorizer:
    """Answers one challenge for every later request (Digest counts its nonce uses)."""

    def __init__(self, challenge: Challenge, username: str, password: str) -> None:
        self.challenge = challenge
        self._username = username
        self._password = password
        self._nc = 0
        self._cnonce = secrets.token_hex(8)

    def __repr__(self) -> str:
        return f"Authorizer({self.challenge.scheme}, user={self._username!r})"

    def header(self, method: str, uri: str) -> str:
        c = self.challenge
        if c.scheme == "basic":
            token = base64.b64encode(f"{self._username}:{self._password}".encode()).decode()
            return f"Basic {token}"
        ha1 = _md5(f"{self._username}:{c.realm}:{self._password}")
        if c.algorithm == "MD5-SESS":
            ha1 = _md5(f"{ha1}:{c.nonce}:{self._cnonce}")
        qop = "auth" if "auth" in c.qop else ("auth-int" if "auth-int" in c.qop else None)
        ha2 = _md5(f"{method}:{uri}" + (f":{_md5('')}" if qop == "auth-int" else ""))
        parts = [f"username={_quote(self._username)}", f"realm={_quote(c.realm)}",
                 f"nonce={_quote(c.nonce)}", f"uri={_quote(uri)}"]
        if qop is None:
            response = _md5(f"{ha1}:{c.nonce}:{ha2}")
        else:
            self._nc += 1
            nc = f"{self._nc:08x}"
            response = _md5(f"{ha1}:{c.nonce}:{nc}:{self._cnonce}:{qop}:{ha2}")
            parts += [f"qop={qop}", f"nc={nc}", f"cnonce={_quote(self._cnonce)}"]
        parts.append(f"response={_quote(response)}")
        if c.algorithm != "MD5":
            parts.append("algorithm=MD5-sess")
        if c.opaque is not None:
            parts.append(f"opaque={_quote(c.opaque)}")
        return "Digest " + ", ".join(parts)
