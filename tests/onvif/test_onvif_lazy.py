"""The ONVIF libraries (zeep, lxml, httpx: ~20 MB resident) load on first use only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import sys
import camrelay.server, camrelay.app, camrelay.web.app, camrelay.web.api_ptz, camrelay.onvif.device
assert not any(m.split('.')[0] in ('zeep', 'onvif', 'lxml') for m in sys.modules), sorted(
    m for m in sys.modules if m.split('.')[0] in ('zeep', 'onvif', 'lxml'))
from camrelay.onvif import _lib
assert _lib.ONVIFCamera.__name__ == 'ONVIFCamera'
assert 'zeep' in sys.modules
try:
    _lib.nothing
except AttributeError:
    print('OK')
"""


def test_server_modules_do_not_import_onvif_until_used() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "OK"
