#!/usr/bin/env bash
# Install Debian's Chromium for the UI tests (tests/test_ui.py drives it with Playwright;
# Playwright's own browser downloads are never used). Idempotent and quiet; needs root
# or sudo, and does nothing where /usr/bin/chromium is already there.
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-browser: no apt-get here; install Chromium and set DIGITFLOW_CHROMIUM" >&2
  exit 0  # the UI test then skips, saying why
fi
SUDO=""
if [[ "$(id -u)" != 0 ]]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "install-browser: not root and no sudo; the UI test will skip" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  echo "install-browser: apt-get could not install chromium; the UI test will skip" >&2
fi
rm -f "$log"
