"""Device health's picture checks (numpy, ~13 MB of RSS) load with the first check, not
with the server: a server with health off never loads them (BENCHMARKS.md, RSS base)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import camrelay.cli.local, camrelay.server, camrelay.app
print(json.dumps(sorted(m for m in sys.modules
                        if m.split(".")[0] == "numpy" or m.startswith("camrelay.health."))))
"""


def test_the_server_starts_without_numpy_or_the_picture_checks() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=60, check=True)
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert "camrelay.health.monitor" in loaded, loaded  # the scheduler itself is there
    heavy = [m for m in loaded if m.split(".")[0] == "numpy"
             or m in ("camrelay.health.diagnosis", "camrelay.health.picture",
                      "camrelay.health.judge")]  # those load in the probe process only
    assert heavy == [], heavy

