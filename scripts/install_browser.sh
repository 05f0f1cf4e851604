#!/usr/bin/env bash
# Install what the studio's browser tests need: Debian's chromium (a real browser, no browser
# download) and the Python `playwright` package that drives it. Idempotent: safe to run again.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends chromium fonts-noto-cjk
fi

if "${PYTHON:-python3}" -c "import playwright" >/dev/null 2>&1; then
  echo "playwright already installed"
else
  # Only the Python package: the tests use /usr/bin/chromium via executable_path, so
  # `playwright install` (which downloads browsers) is never run.
  "${PYTHON:-python3}" -m pip install --quiet "playwright>=1.40"
fi
