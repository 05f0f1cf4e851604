#!/usr/bin/env bash
# Install Pusa studio and everything it needs into the current Python (3.10+).
# torch is pinned and installed first: an unpinned torch would pull several GB of CUDA packages
# on machines that only need the CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pip install --quiet "torch==2.13.0"
"$PY" -m pip install --quiet -e ".[test]"
echo "pusa installed: $("$PY" -c 'import pusa; print(pusa.__version__)')" >&2
