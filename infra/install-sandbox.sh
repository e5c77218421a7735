#!/usr/bin/env bash
# Installs bubblewrap, the isolation tool tasks/sandbox.py prefers:  bash infra/install-sandbox.sh
#
# Only as root and only where apt exists; otherwise it prints what to do and exits 0, and the
# sandbox falls back to a weaker backend with a warning (see docs/sandbox.md).
set -euo pipefail
if command -v bwrap >/dev/null 2>&1; then
  echo "bubblewrap present: $(bwrap --version)"
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq bubblewrap
  echo "bubblewrap installed: $(bwrap --version)"
else
  echo "WARNING: bubblewrap (bwrap) is missing and cannot be installed here (needs root and apt)." >&2
  echo "WARNING: install the 'bubblewrap' package, or model-written code runs in a weaker sandbox." >&2
fi
