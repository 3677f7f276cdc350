"""``camrelay cluster status``: the nodes of a cluster and who pulls which camera, read from
Redis (``redis_url`` of the settings) -- it works even when no node answers HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from camrelay.cli.admin import config_option
from camrelay.cli.common import json_option
from camrelay.cli.output import emit_json, table


@click.group("cluster")
def cluster() -> None:
    """Several nodes on one store and one Redis (redis_url)."""


@cluster.command("status")
@config_option
@json_option
def status(config: Path | None, as_json: bool) -> None:
    """Nodes (public URL, ICE addresses, viewers, cameras), each live camera's holder, and
    the live viewers per unit and per camera, cluster-wide."""
    from camrelay.cluster.node import cluster_status
    from camrelay.settings import load_settings

    found: dict[str, Any] = asyncio.run(cluster_status(load_settings(config)))
    if as_json:
        emit_json(found)
        return
    table([dict(n, processes=",".join(n["processes"]), cameras=len(n["cameras"]),
                ice_addresses=",".join(n["ice_addresses"]) or "all")
           for n in found["nodes"]],
          ["id", "url", "processes", "ice_addresses", "viewers", "cameras", "max_cameras"])
    click.echo()
    table(found["leases"], ["camera_id", "node", "expires_in_ms"])
    click.echo()  # live views, cluster-wide (the seats of [limits])
    table(found["viewers"]["units"], ["unit", "viewers"])
    click.echo()
    table(found["viewers"]["cameras"], ["camera_id", "viewers"])


COMMANDS = [cluster]
