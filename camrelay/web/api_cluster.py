"""``GET /api/v1/cluster``: the nodes and the live viewers per camera and per unit.

With ``redis_url`` the answer is the whole cluster's, read from Redis (the members'
heartbeats and the live views' seats, as ``camrelay cluster status`` shows them); without
it, this node alone.  Administrators and auditors see the cameras and units of their own
subtree only; the nodes' load (viewers, cameras) is given as totals.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from camrelay.access.policy import OVERSEERS
from camrelay.errors import AccessDenied
from camrelay.placement import Census, NodeLoad
from camrelay.web.context import principal
from camrelay.web.keys import (
    HUB_KEY,
    PLACEMENT_KEY,
    POLICY_KEY,
    SETTINGS_KEY,
    VIEWS_KEY,
    WEBRTC_KEY,
)
from camrelay.web.openapi import Api

api = Api()

NODE = api.schema("ClusterNode", {
    "type": "object", "required": ["id", "url", "viewers", "cameras", "max_cameras",
                                   "processes"],
    "properties": {
        "id": {"type": "string"},
        "url": {"type": "string", "description": "its public base URL"},
        "viewers": {"type": "integer", "description": "live WebRTC sessions it serves"},
        "cameras": {"type": "integer", "description": "cameras it pulls"},
        "max_cameras": {"type": "integer", "description": "cluster.max_cameras (0: none)"},
        "processes": {"type": "integer"},
    },
})
CLUSTER = api.schema("Cluster", {
    "type": "object", "required": ["clustered", "nodes", "cameras", "units"],
    "properties": {
        "clustered": {"type": "boolean", "description": "redis_url is set: the counts are "
                      "the whole cluster's; else this node's"},
        "nodes": {"type": "array", "items": NODE},
        "cameras": {"type": "array", "description": "live views per camera of the "
                    "caller's subtree", "items": {
                        "type": "object", "required": ["camera_id", "viewers"],
                        "properties": {"camera_id": {"type": "integer"},
                                       "viewers": {"type": "integer"}}}},
        "units": {"type": "array", "description": "live views by the users of each unit "
                  "of the caller's subtree (its sub-units not counted)", "items": {
                      "type": "object", "required": ["unit", "viewers"],
                      "properties": {"unit": {"type": "string"},
                                     "viewers": {"type": "integer"}}}},
    },
})


def _this_node(request: web.Request) -> Census:
    app = request.app
    settings, views = app[SETTINGS_KEY], app[VIEWS_KEY]
    node = NodeLoad(settings.cluster.node_id or views.node, settings.public_url,
                    len(app[WEBRTC_KEY].sessions()), len(app[HUB_KEY].camera_ids()),
                    settings.cluster.max_cameras, 1)
    return Census((node,), views.seats.local())


@api.route("GET", "/api/v1/cluster",
           summary="The nodes (id, URL, load) and the live viewers per camera and per unit "
                   "of the caller's subtree, cluster-wide (administrators, auditors)",
           tag="relay", ok=CLUSTER, errors=(401, 403, 503))
async def cluster(request: web.Request) -> web.Response:
    who = principal(request)
    if who.role not in OVERSEERS:
        raise AccessDenied("only administrators and auditors see the cluster's viewers")
    placement = request.app.get(PLACEMENT_KEY)
    census = await placement.census() if placement is not None else _this_node(request)
    viewers = census.viewers
    cameras, units = await request.app[POLICY_KEY].overseen_places(
        who, viewers.cameras.keys(), viewers.units.keys())
    body: dict[str, Any] = {
        "clustered": placement is not None,
        "nodes": [{"id": n.id, "url": n.url, "viewers": n.viewers, "cameras": n.cameras,
                   "max_cameras": n.max_cameras, "processes": n.processes}
                  for n in census.nodes],
        "cameras": [{"camera_id": c, "viewers": n} for c, n in sorted(viewers.cameras.items())
                    if c in cameras],
        "units": [{"unit": u, "viewers": n} for u, n in sorted(viewers.units.items())
                  if u in units]}
    return web.json_response(body, headers={"Cache-Control": "no-store"})
