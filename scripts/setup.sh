#!/usr/bin/env bash
# Install Pusa studio and everything it needs, then record which Python has it (.pusa-python), so
# scripts/pusa and scripts/test.sh use that one.
#
# Which Python: $PYTHON (default python3). If that is a system Python that refuses pip installs
# (PEP 668 "externally-managed-environment", e.g. Debian/Ubuntu's /usr/bin/python3) and not already a
# virtual environment, a project virtual environment .venv is created and used instead (with
# python3-venv installed first where it is missing and we are allowed to). Inside an active virtual
# environment, or with a pyenv/conda Python, it installs right there.
#
# torch is pinned and installed first: an unpinned torch would pull several GB of CUDA packages on
# machines that only need the CPU build (on a GPU box PyPI's build of that version brings CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "error: no Python interpreter '$PY' found; install Python 3.10+ or set PYTHON" >&2
  exit 1
fi
if "$PY" - <<'PYCODE'
import os, sys, sysconfig
marker = os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED")
sys.exit(0 if os.path.exists(marker) and sys.prefix == sys.base_prefix else 1)
PYCODE
then
  if [ ! -x .venv/bin/python ]; then
    echo "$PY is managed by the system (PEP 668): creating the project environment .venv" >&2
    if ! "$PY" -m venv .venv 2>/dev/null; then
      rm -rf .venv
      if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        ver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "python${ver}-venv" \
          || DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
        "$PY" -m venv .venv
      else
        echo "error: $PY cannot create a virtual environment; install python3-venv (sudo apt-get install" \
             "python3-venv) or set PYTHON to another Python, then run this again" >&2
        exit 1
      fi
    fi
  fi
  PY="$(pwd)/.venv/bin/python"
fi
"$PY" -m pip install --quiet "torch==2.13.0"
"$PY" -m pip install --quiet -e ".[test]"
PY_PATH=$("$PY" -c 'import sys; print(sys.executable)')
echo "$PY_PATH" > .pusa-python
echo "pusa $("$PY" -c 'import pusa; print(pusa.__version__)') installed for $PY_PATH; run it with scripts/pusa" >&2
