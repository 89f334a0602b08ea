#!/usr/bin/env bash
# Debian packages the test suite needs beyond Python: Prometheus (promtool), Pushgateway and Alertmanager (amtool)
# for the monitoring tests; Chromium and its driver for the browser test of the LLMOps view. Installed only when missing (needs root or sudo, as on CI); the demo does not need them.
set -euo pipefail

missing=()
for tool in promtool amtool prometheus-pushgateway prometheus-alertmanager chromium chromedriver; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
echo "setup_system: installing Debian packages (missing: ${missing[*]})"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup_system: run as root or install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
$SUDO apt-get update -qq
# policy-rc.d-style start-ups are not needed: the tests start their own instances on 127.0.0.1
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  prometheus prometheus-pushgateway prometheus-alertmanager >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
