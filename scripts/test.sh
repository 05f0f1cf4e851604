#!/usr/bin/env bash
# Install everything the tests need (Python packages, Debian's chromium for the browser tests),
# then run the whole suite with the Python that scripts/setup.sh installed into.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=$(cat .pusa-python)
if [ -f scripts/install_browser.sh ]; then PYTHON="$PY" bash scripts/install_browser.sh; fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$PY" -m pytest -q "$@"
