#!/usr/bin/env bash
# Install what scripts/bench/perf.py needs besides the test environment (idempotent).
#   bash scripts/bench/setup.sh
# Janus (Debian package, its streaming plugin reads the RTSP simulator) and iproute2 for
# the dummy interface Janus' libnice needs inside the loopback-only namespace.
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
for pkg in janus iproute2 util-linux; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# Janus' Debian package enables a systemd service; the benchmark runs its own instance
# with its own configuration, so a system-wide one (if any) is left alone.
if [ "${CAMRELAY_SKIP_SETUP:-0}" != "1" ] && [ -f scripts/setup-test-env.sh ]; then
  bash scripts/setup-test-env.sh
fi
echo "bench setup: ok (janus $(dpkg-query -W -f='${Version}' janus))"
