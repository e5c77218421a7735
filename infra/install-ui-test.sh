#!/usr/bin/env bash
# Installs Debian's chromium, which tests/test_ops.py drives headless to screenshot the Prefect UI:
#   bash infra/install-ui-test.sh
#
# Only as root and only where apt exists; otherwise it prints what to do and exits 0, and the UI
# test skips itself with the reason.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "chromium present: $(chromium --version 2>/dev/null | head -1)"
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq chromium
  echo "chromium installed: $(chromium --version 2>/dev/null | head -1)"
else
  echo "WARNING: chromium is missing and cannot be installed here (needs root and apt)." >&2
  echo "WARNING: install the 'chromium' package, or the UI screenshot test is skipped." >&2
fi
