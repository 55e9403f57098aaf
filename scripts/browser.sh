#!/usr/bin/env bash
# The browser tests (or, with --screenshots-only, the screenshots of
# `make screenshots`) on their own: installs Chromium, CJK fonts and
# playwright-core if missing, starts a Kafka broker unless
# COCKPIT_TEST_KAFKA names one, and runs dashboard/e2e/browser.test.mjs,
# which builds and starts the real cockpit against it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need+=(fonts-noto-cjk)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  echo "installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
(cd dashboard/e2e && npm install --no-audit --no-fund --silent)
COCKPIT_CHDB_LIB=$(bash scripts/fetch-chdb.sh | tail -n 1)
export COCKPIT_CHDB_LIB
if [ -z "${COCKPIT_TEST_KAFKA:-}" ]; then
  bash scripts/kafka.sh fetch
  trap 'bash scripts/kafka.sh stop || true' EXIT
  eval "$(bash scripts/kafka.sh start)"
  export COCKPIT_TEST_KAFKA=$KAFKA
fi
node dashboard/e2e/browser.test.mjs "$@"
