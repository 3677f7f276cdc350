"""The CLI's client of the REST API (a running server, ``CAMRELAY_URL`` + ``CAMRELAY_TOKEN``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from camrelay import errors
from camrelay.redact import redact_text, strip_credentials

if TYPE_CHECKING:
    import urllib.error

_BY_STATUS: dict[int, type[errors.CamrelayError]] = {
    400: errors.BadRequest,
    401: errors.AuthenticationRequired,
    403: errors.AccessDenied,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
    422: errors.ValidationError,
    503: errors.SourceUnavailable,
}


class ApiClient:
    def __init__(self, url: str, token: str | None, *, ca_file: str | None = None,
                 timeout: float = 60.0) -> None:
        self.base = url.rstrip("/")
        self.shown = strip_credentials(self.base)  # for messages
        self.token = token
        self.timeout = timeout
        self._ca_file = ca_file

    def request(self, method: str, path: str, *, body: Any = None,
                params: dict[str, Any] | None = None, raw: bool = False) -> Any:
        # urllib.request brings http.client, ssl and email (~40 ms): loaded on the first
        # request, not for `camrelay --help` (scripts/bench/cli_start.py)
        import http.client
        import ssl
        import urllib.error
        import urllib.parse
        import urllib.request

        context = (ssl.create_default_context(cafile=self._ca_file)
                   if self.base.startswith("https") else None)
        url = self.base + path
        if params:
            clean = {k: ("true" if v is True else "false" if v is False else v)
                     for k, v in params.items() if v is not None}
            if clean:
                url += "?" + urllib.parse.urlencode(clean, doseq=True)
        data = None
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=context) as resp:
                payload = resp.read()
                if raw:
                    return payload
                if not payload:
                    return None
                return json.loads(payload.decode("utf-8"))
        except urllib.error.HTTPError as err:
            raise _problem(err) from None
        except urllib.error.URLError as err:
            raise errors.CamrelayError(
                f"cannot reach the camrelay server at {self.shown}: {err.reason} "
                "(is it running? check --url / CAMRELAY_URL)") from None
        except TimeoutError:
            raise errors.CamrelayError(f"the camrelay server at {self.shown} did not answer "
                                       f"within {self.timeout:g}s") from None
        except (OSError, http.client.HTTPException) as err:
            raise errors.CamrelayError(
                f"the connection to the camrelay server at {self.shown} failed: "
                f"{type(err).__name__}: {redact_text(str(err))}") from None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise errors.CamrelayError(f"the server at {self.shown} did not answer with JSON; "
                                       "is --url / CAMRELAY_URL a camrelay server?") from None


def _problem(err: urllib.error.HTTPError) -> errors.CamrelayError:
    try:
        body = json.loads(err.read().decode("utf-8"))
        detail = str(body.get("detail") or body.get("title") or err.reason)
    except (ValueError, AttributeError):
        body, detail = {}, str(err.reason)
    cls = _BY_STATUS.get(err.code, errors.CamrelayError)
    extra = {k: v for k, v in body.items() if k not in ("type", "title", "status", "detail")}
    if cls is errors.ValidationError:
        return errors.ValidationError(detail, **extra)
    if cls is errors.SourceUnavailable:
        extra.pop("reason", None)
        return errors.SourceUnavailable(detail, reason=str(body.get("reason", "unreachable")),
                                        **extra)
    error = cls(detail, **extra)
    error.status = err.code
    return error
