"""The README's first command on a stock Debian/Ubuntu Python (PEP 668: pip refuses the system
interpreter): scripts/setup.sh must make and use a project .venv, and scripts/pusa must run it.

The commands take about two minutes, nearly all of it pip on one core, so they start in a
background thread as soon as the test is collected (``conftest.py``) and run beside the rest of
the suite; the test waits for them and checks every result, exactly as if it had run them itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
import tempfile
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PY = Path("/usr/bin/python3")
TIMEOUT_S = 1500  # the whole sequence, including time shared with the other tests


def externally_managed(py: Path = SYSTEM_PY) -> bool:
    if not py.is_file():
        return False
    out = subprocess.run([str(py), "-c", "import os, sysconfig; print(os.path.exists(os.path.join("
                          "sysconfig.get_paths()['stdlib'], 'EXTERNALLY-MANAGED')))"], capture_output=True, text=True)
    return out.stdout.strip() == "True"


class SetupRun:
    """setup.sh, a first generate, then setup.sh again, on a copy of the checkout, in a thread."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="pusa-setup-test-"))
        self.copy, self.out = self.folder / "checkout", self.folder / "first.mp4"
        self.steps: dict[str, subprocess.CompletedProcess] = {}
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="setup-script-test", daemon=True)

    def start(self) -> SetupRun:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
            for name in filter(None, files.decode().split("\0")):
                src = ROOT / name
                if src.is_file():
                    (self.copy / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, self.copy / name)
            env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
            env["PYTHON"] = str(SYSTEM_PY)
            # pip byte-compiles every module it installs (torch, transformers, gradio); the test checks
            # the venv and that pusa runs, and Python compiles what it imports
            env["PIP_NO_COMPILE"] = "1"
            commands = {
                "setup": ["bash", "scripts/setup.sh"],
                "generate": ["scripts/pusa", "generate", "t2v", "--prompt", "a red ball", "--steps", "1", "--frames",
                             "5", "--output", str(self.out), "--no-progress"],
                "again": ["bash", "scripts/setup.sh"],  # the existing .venv is reused
            }
            for step, command in commands.items():
                self.steps[step] = subprocess.run(command, cwd=self.copy, env=env, capture_output=True, text=True,
                                                  timeout=900)
                if self.steps[step].returncode != 0:
                    return
        except BaseException as e:  # reported by the test, which runs in the main thread
            self.error = e

    def wait(self) -> None:
        self.thread.join(TIMEOUT_S)
        if self.thread.is_alive():
            raise TimeoutError(f"scripts/setup.sh and the first generate did not finish in {TIMEOUT_S} s")
        if self.error is not None:
            raise self.error

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def test_setup_on_the_system_python_makes_a_venv_and_pusa_runs(request):
    if not externally_managed():
        pytest.skip("no externally managed system Python here")
    run = request.config.stash.get(SETUP_RUN, None) or SetupRun().start()  # started at collection, or now
    try:
        run.wait()
        setup = run.steps["setup"]
        assert setup.returncode == 0, setup.stderr[-3000:]
        assert "externally-managed-environment" not in setup.stderr
        recorded = Path((run.copy / ".pusa-python").read_text().strip())
        assert recorded.is_relative_to(run.copy / ".venv"), recorded
        generate = run.steps["generate"]
        assert generate.returncode == 0, generate.stderr[-3000:]
        assert run.out.is_file() and run.out.with_suffix(".json").is_file()
        again = run.steps["again"]
        assert again.returncode == 0 and "creating the project environment" not in again.stderr, again.stderr[-3000:]
        assert sysconfig.get_paths()["stdlib"]  # (the test process itself is untouched)
    finally:
        run.remove()


SETUP_RUN = pytest.StashKey[SetupRun]()
