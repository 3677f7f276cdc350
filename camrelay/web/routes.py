"""Every declared route of the application, in the order the document lists them.

Importing this module builds no application: the front of worker processes reads the
routes' owners from here (:class:`camrelay.web.owners.OwnerTable`)."""

from __future__ import annotations

from camrelay.web import (
    api_access,
    api_accounts,
    api_alarms,
    api_catalog,
    api_cluster,
    api_drills,
    api_federation,
    api_health,
    api_keepwarm,
    api_meta,
    api_ptz,
    api_relay,
    api_screens,
    api_views,
    events,
    talk,
    whep,
    whip,
)
from camrelay.web.openapi import Api
from camrelay.web.owners import OwnerTable

APIS: tuple[Api, ...] = (api_meta.api, api_catalog.api, api_accounts.api, api_access.api,
                         events.api, api_relay.api, api_cluster.api, whep.api, whip.api,
                         talk.api, api_keepwarm.api, api_ptz.api, api_health.api,
                         api_drills.api, api_alarms.api,
                         api_views.api, api_screens.api, api_federation.api,
                         api_meta.pages)
OWNERS = OwnerTable.from_apis(APIS)
