#!/usr/bin/env bash
# Installs everything the test suite needs, idempotently: Debian packages for the real
# parts the tests run (PostgreSQL, redis-server, GStreamer's RTSP server as the camera
# simulator, Chromium and Firefox ESR for the console tests, iproute2 for network namespaces) and a
# virtual environment with camrelay and its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
  postgresql redis-server
  python3-gi python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  chromium fonts-wqy-microhei iproute2 util-linux procps  # a CJK font: the console's screenshots
  firefox-esr  # the console in Firefox (driven over Marionette by marionette-driver)
  gcc libc6-dev python3-dev  # builds camrelay's C extension (the tests require it)
)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
