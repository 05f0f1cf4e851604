#!/usr/bin/env bash
# Install everything the tests need (Python packages, Debian's chromium for the browser tests),
# then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -f scripts/install_browser.sh ]; then bash scripts/install_browser.sh; fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "${PYTHON:-python3}" -m pytest -q "$@"
