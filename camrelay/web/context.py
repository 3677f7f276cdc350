"""Typed application state shared by the route modules."""

from __future__ import annotations

from aiohttp import web

from camrelay.access.accounts import Principal
from camrelay.access.policy import Policy
from camrelay.catalog.service import Catalog
from camrelay.catalog.store import Store
from camrelay.settings import Settings

SETTINGS_KEY = web.AppKey("settings", Settings)
STORE_KEY = web.AppKey("store", Store)
CATALOG_KEY = web.AppKey("catalog", Catalog)
POLICY_KEY = web.AppKey("policy", Policy)


def principal(request: web.Request) -> Principal:
    from camrelay.web.middleware import PRINCIPAL_KEY

    who = request.get(PRINCIPAL_KEY)
    if who is None:  # pragma: no cover - the auth middleware guarantees it
        from camrelay.errors import AuthenticationRequired

        raise AuthenticationRequired("this route needs an Authorization: Bearer token")
    assert isinstance(who, Principal)
    return who
