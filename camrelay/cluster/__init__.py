"""Worker processes on one machine: a supervisor/front process and N complete camrelay apps.

One camrelay process is bound to one core by the GIL.  With ``relay.workers`` >= 2,
``camrelay serve`` runs:

* the **supervisor/front** (:mod:`camrelay.cluster.supervisor`, :mod:`camrelay.cluster.front`):
  listens on ``server.listen`` (TLS there as usual), starts the workers, restarts one that
  dies, forwards SIGTERM/SIGINT, and reverse-proxies HTTP to them;
* N **workers** (:mod:`camrelay.cluster.worker`): each the full app (same settings, store
  and journal) on a unix socket ``<data_dir>/run/worker-<k>.sock``, with its own node id
  ``<node id>-w<k>`` for heartbeats and crash recovery.

Camera ``c`` is owned by worker ``c % N`` (:mod:`camrelay.cluster.routing`): that worker
pulls it, holds its hub, its viewers' ICE sockets and its PTZ lock.  Media never passes
through the front; only HTTP signalling does.
"""

from __future__ import annotations

import os

from camrelay.settings import Settings


def worker_count(settings: Settings) -> int:
    """``relay.workers``, with 0 meaning one per CPU this process may run on."""
    if settings.relay.workers == 0:
        return max(1, len(os.sched_getaffinity(0)))
    return settings.relay.workers
