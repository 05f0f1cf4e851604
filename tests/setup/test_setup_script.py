"""The README's first command on a stock Debian/Ubuntu Python (PEP 668: pip refuses the system
interpreter): scripts/setup.sh must make and use a project .venv, and scripts/pusa must run it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PY = Path("/usr/bin/python3")


def _externally_managed(py: Path) -> bool:
    if not py.is_file():
        return False
    out = subprocess.run([str(py), "-c", "import os, sysconfig; print(os.path.exists(os.path.join("
                          "sysconfig.get_paths()['stdlib'], 'EXTERNALLY-MANAGED')))"], capture_output=True, text=True)
    return out.stdout.strip() == "True"


@pytest.mark.skipif(not _externally_managed(SYSTEM_PY), reason="no externally managed system Python here")
def test_setup_on_the_system_python_makes_a_venv_and_pusa_runs(tmp_path):
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    copy = tmp_path / "checkout"
    for name in filter(None, files.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, copy / name)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PYTHON"] = str(SYSTEM_PY)
    # pip byte-compiles every module it installs (torch, transformers, gradio: ~12 s of this test on
    # 2 busy cores); the test checks the venv and that pusa runs, and Python compiles what it imports
    env["PIP_NO_COMPILE"] = "1"
    setup = subprocess.run(["bash", "scripts/setup.sh"], cwd=copy, env=env, capture_output=True, text=True,
                           timeout=900)
    assert setup.returncode == 0, setup.stderr[-3000:]
    assert "externally-managed-environment" not in setup.stderr
    recorded = Path((copy / ".pusa-python").read_text().strip())
    assert recorded.is_relative_to(copy / ".venv"), recorded
    out = tmp_path / "first.mp4"
    run = subprocess.run(["scripts/pusa", "generate", "t2v", "--prompt", "a red ball", "--steps", "1", "--frames",
                          "5", "--output", str(out), "--no-progress"], cwd=copy, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert out.is_file() and out.with_suffix(".json").is_file()
    # run again: the existing .venv is reused, nothing is reinstalled into the system Python
    again = subprocess.run(["bash", "scripts/setup.sh"], cwd=copy, env=env, capture_output=True, text=True,
                           timeout=900)
    assert again.returncode == 0 and "creating the project environment" not in again.stderr
    assert sysconfig.get_paths()["stdlib"]  # (the test process itself is untouched)
