"""Child process of the kill -9 test: the real app's gate opens views, then waits to die.

argv[1]: JSON list of {"digest", "user_id", "camera_id"}; the data directory comes from
CAMRELAY_DATA_DIR.  Prints one line per opened view id, then "ready".
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiohttp import web

from camrelay.access.gate import ViewRequest
from camrelay.app import create_app
from camrelay.settings import load_settings
from camrelay.store import Store
from camrelay.web.keys import VIEWS_KEY


async def main() -> None:
    wanted = json.loads(sys.argv[1])
    settings = load_settings()
    store = await Store.open(settings)
    app = create_app(settings, store)
    app[VIEWS_KEY].heartbeat_seconds = 0.2
    runner = web.AppRunner(app)
    await runner.setup()  # starts the journal and the watcher (heartbeats)
    for one in wanted:
        view = await app[VIEWS_KEY].open_view(ViewRequest(
            token_digest=one["digest"], user_id=one["user_id"], camera_id=one["camera_id"],
            action="live", purpose="video wall", client_address="127.0.0.7",
            user_agent="wall/1", via="whep"))
        print(view.id, flush=True)
    print("ready", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main())
