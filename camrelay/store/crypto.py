"""Camera credentials encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256).

The key comes from the settings or from ``<data_dir>/credential.key`` (generated with
mode 0600 on first start).  The store keeps a sealed canary, so a key that cannot
decrypt the stored credentials is a clear start-up error, not a surprise at the first
camera connection.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from camrelay.errors import ConfigError, CredentialKeyError
from camrelay.store.private import private_dir

CANARY = "camrelay-credential-key-check"


class CredentialCipher:
    def __init__(self, key: str | bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise ConfigError(
                "credential_key: not a valid key (expected 32 url-safe base64-encoded bytes, "
                "as `camrelay init` or Fernet.generate_key() makes)"
            ) from None

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            raise CredentialKeyError(
                "the credential key cannot decrypt the stored camera credentials: the store "
                "was created with another key (check credential_key or the data directory's "
                "credential.key)"
            ) from None

    def __repr__(self) -> str:
        return "CredentialCipher(key=***)"


def load_or_create_key(configured: str | None, data_dir: Path, name: str = "credential.key") -> str:
    """The configured key, or the one in the data directory, made on first start."""
    if configured:
        return configured
    path = data_dir / name
    if path.exists():
        return path.read_text(encoding="ascii").strip()
    private_dir(data_dir)
    key = Fernet.generate_key().decode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key + "\n")
    return key
