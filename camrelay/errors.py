"""The one root of camrelay's exceptions and its meaningful children.

Each error carries the HTTP status and a short problem title, so one middleware in
``camrelay.web`` turns any of them into an ``application/problem+json`` response and
the CLI turns them into a one-line message.  Messages never contain secrets: build
them from redacted values (``camrelay.redact``).
"""

from __future__ import annotations

from typing import Any


class CamrelayError(Exception):
    """Root of every error camrelay raises on purpose."""

    status = 500
    title = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        body.update(self.extra)
        return body


class ConfigError(CamrelayError):
    """The settings file or environment holds a value that cannot be used."""

    title = "Configuration error"


class StoreError(CamrelayError):
    """The store cannot be opened, migrated or read."""

    title = "Store error"


class CredentialKeyError(StoreError):
    """The configured credential key cannot decrypt the stored credentials."""

    title = "Credential key mismatch"


class ValidationError(CamrelayError):
    """Input that breaks a rule of the catalogue; ``field`` names the culprit."""

    status = 422
    title = "Invalid input"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        if field is not None:
            extra["field"] = field
        super().__init__(detail, **extra)
        self.field = field


class BadRequest(CamrelayError):
    """A request that cannot be parsed at all (not JSON, bad SDP, bad query)."""

    status = 400
    title = "Bad request"


class UnsupportedMediaType(CamrelayError):
    status = 415
    title = "Unsupported media type"


class PayloadTooLarge(CamrelayError):
    status = 413
    title = "Payload too large"


class NotFound(CamrelayError):
    status = 404
    title = "Not found"


class UnitNotFound(NotFound):
    title = "Unit not found"


class CameraNotFound(NotFound):
    title = "Camera not found"


class UserNotFound(NotFound):
    title = "User not found"


class Conflict(CamrelayError):
    """The request clashes with the state of the store (duplicate, still in use)."""

    status = 409
    title = "Conflict"


class NoStream(Conflict):
    """A camera without a stream address was asked for video: nothing is unavailable,
    nothing is configured (``reason`` "no_stream")."""

    title = "No stream configured"

    def __init__(self, detail: str, **extra: Any) -> None:
        extra.setdefault("reason", "no_stream")
        super().__init__(detail, **extra)


class NoBackchannel(Conflict):
    """Talk-back to a camera without an ONVIF audio back-channel camrelay can speak on
    (``reason`` "no_talkback")."""

    title = "The camera has no audio back-channel"

    def __init__(self, camera_id: int, why: str) -> None:
        super().__init__(f"camera {camera_id} has no audio back-channel: {why}",
                         reason="no_talkback")


class AuthenticationRequired(CamrelayError):
    """No credentials, or credentials that are not valid (unknown, expired, revoked)."""

    status = 401
    title = "Authentication required"


class AccessDenied(CamrelayError):
    """Authenticated, but the rules do not allow this action."""

    status = 403
    title = "Access denied"


class RetryLater(CamrelayError):
    """An error that says when to try again (the ``Retry-After`` header, in seconds)."""

    def __init__(self, detail: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = retry_after


class TooManyRequests(RetryLater):
    status = 429
    title = "Too many requests"


class SourceUnavailable(CamrelayError):
    """A camera's stream cannot be pulled right now (unreachable, auth, timeout)."""

    status = 503
    title = "Source unavailable"

    def __init__(self, detail: str, *, reason: str = "unreachable", retry_after: int = 5,
                 **extra: Any) -> None:
        extra.setdefault("reason", reason)
        super().__init__(detail, **extra)
        self.reason = reason
        self.retry_after = retry_after

    def without_address(self, camera_id: int) -> SourceUnavailable:
        """The same failure told to a caller who may not know the stream's address (only
        those who manage the camera may): the reason in words, no address, no upstream
        text (FFmpeg's and the camera's messages quote the URL)."""
        what = _REASON_WORDS.get(self.reason, "its stream is not available")
        if isinstance(self, SourceRefused):
            return SourceRefused(f"camera {camera_id}: {what}", reason=self.reason)
        return SourceUnavailable(f"camera {camera_id}: {what}", reason=self.reason,
                                 retry_after=self.retry_after)


class SourceRefused(SourceUnavailable):
    """The upstream refuses the relay itself (another camrelay answered 401, 403 or 404:
    the credential it gave the relay was revoked, or the camera is no longer shared).
    Unlike a failure to reach it, this ends the stream's viewers at once instead of
    keeping them waiting for a reconnect; the stream itself retries on its backoff.  Its
    503 problem body says ``"refused": true``, so a camrelay above that pulls the camera
    from this one ends its own viewers too (a revocation cuts every level above)."""

    def __init__(self, detail: str, *, reason: str = "auth", **extra: Any) -> None:
        extra.setdefault("refused", True)  # in the problem body: a relay above passes it on
        super().__init__(detail, reason=reason, retry_after=30, **extra)


_REASON_WORDS = {
    "unreachable": "the relay cannot reach the camera's stream",
    "auth": "the camera refused the relay's credentials",
    "timeout": "the camera did not answer in time",
    "no_video": "the camera sends no usable video",
    "unsupported": "the camera's stream is in a form the relay cannot serve",
    "disabled": "the camera is disabled or outside its validity window",
    "no_stream": "the camera has no stream address",
    "no_publisher": "no publisher: the field device is not sending",
    "not_found": "the upstream relay does not serve this camera (or no longer shares it)",
}
