"""``pusa generate`` on two ranks from the command line: ``--nproc 2`` and a direct ``torchrun``
launch write what one process writes; a rank killed mid-run ends the run with exit 1, in bounded time.

Each launch starts torch, diffusers and a tiny model in three processes: these tests take minutes
on a small CPU machine, so they are few and each checks several things.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pusa.parallel.launch import rank_environment, torchrun_command

AGENT_GRACE_S = 30
REQUEST = ["generate", "t2v", "--prompt", "a red ball rolls", "--steps", "2", "--device", "cpu"]


def _frames(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("frame_*.png"))]).astype(int)


def _run(command: list[str], timeout: float = 500) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=rank_environment(2), capture_output=True, text=True, timeout=timeout)


def test_two_ranks_write_what_one_process_writes(tiny_diffusers, tmp_path):
    model = ["--model", str(tiny_diffusers)]
    # --nproc 2, no seed: CFG-parallel 2 by default (cfg 5); rank 0 draws the seed, every rank uses it.
    nproc = _run([sys.executable, "-m", "pusa.cli", *REQUEST, *model, "--output", str(tmp_path / "nproc"),
                  "--nproc", "2"])
    assert nproc.returncode == 0, nproc.stderr[-3000:]
    assert nproc.stdout.strip().splitlines() == [str(tmp_path / "nproc")]  # rank 0 alone prints
    seeds = re.findall(r"seed: (\d+)", nproc.stderr)
    assert len(seeds) == 1, nproc.stderr[-3000:]
    seed = ["--seed", seeds[0]]

    # Launched directly under torchrun with Ulysses 2 (the sequence split over the two ranks).
    direct = _run(torchrun_command(2, [*REQUEST, *model, *seed, "--output", str(tmp_path / "direct"),
                                       "--ulysses-degree", "2", "--no-progress"]))
    assert direct.returncode == 0, direct.stderr[-3000:]
    assert direct.stdout.strip().splitlines() == [str(tmp_path / "direct")]

    from pusa.cli import main

    assert main([*REQUEST, *model, *seed, "--output", str(tmp_path / "one"), "--no-progress"]) == 0
    one = _frames(tmp_path / "one")
    assert one.shape[0] == 9
    assert np.abs(_frames(tmp_path / "nproc") - one).max() == 0  # CFG-parallel: the same arithmetic
    assert np.abs(_frames(tmp_path / "direct") - one).max() <= 1  # Ulysses: float noise at most
    assert sorted(p.name for p in tmp_path.iterdir()) == ["direct", "nproc", "one"]


def _rank_pids(launcher: int) -> dict[int, int]:
    """``{rank: pid}`` of the processes under ``launcher`` that torchrun started as ranks."""
    import psutil

    found = {}
    for child in psutil.Process(launcher).children(recursive=True):
        try:
            env = child.environ()
        except psutil.Error:
            continue
        if "RANK" in env and "TORCHELASTIC_RUN_ID" in env:
            found[int(env["RANK"])] = child.pid
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks through /proc")
@pytest.mark.parametrize("how", ["killed", "stopped"])
def test_a_lost_rank_ends_the_run_with_exit_1_in_bounded_time(tiny_diffusers, tmp_path, how):
    """Killed: torchrun sees it and stops the other rank at once. Stopped (hangs, answers nothing):
    rank 0 gives up when --rank-timeout passes, says so, and torchrun kills the stopped rank."""
    import psutil

    # Stopped: the run lasts the rank timeout plus torchrun's fixed grace, so the timeout is short (8 s,
    # still above the ranks' skew while they load on a busy machine). Killed: the run must end well
    # before a rank timeout could have ended it, so that one stays long and the bound below means something.
    timeout = {"killed": 15, "stopped": 8}[how]
    # Chained windows at 50 steps: long enough on the tiny model to act on while it denoises.
    proc = subprocess.Popen([sys.executable, "-m", "pusa.cli", *REQUEST[:4], "--steps", "50", "--frames", "33",
                             "--device", "cpu", "--model", str(tiny_diffusers), "--nproc", "2", "--ulysses-degree",
                             "2", "--rank-timeout", str(timeout), "--output", str(tmp_path / "out")],
                            env=rank_environment(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.extend(iter(lambda: proc.stderr.read1(4096), b"")), daemon=True)
    reader.start()
    ranks: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 400
        while b"denoise" not in b"".join(err):  # rank 0's progress: every rank is denoising now
            assert proc.poll() is None and time.monotonic() < deadline, b"".join(err)[-3000:]
            time.sleep(0.05)
        ranks = _rank_pids(proc.pid)
        assert sorted(ranks) == [0, 1]
        os.kill(ranks[1], signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        lost = time.monotonic()
        code = proc.wait(timeout=timeout + AGENT_GRACE_S + 60)
        took = time.monotonic() - lost
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in ranks.values():  # never leave a stopped rank behind, whatever happened
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)
    reader.join(timeout=5)
    text = b"".join(err).decode(errors="replace")
    assert code == 1, text[-3000:]
    assert "error: the run on 2 ranks (Ulysses 2 (2 ranks)) failed" in text
    if how == "killed":
        assert took < timeout, took
    else:
        # rank 0 gives up at the timeout; torchrun's agent then allows the hung rank a fixed 30 s
        # (its failure path ignores --shutdown-timeout) before SIGKILL
        assert timeout <= took < timeout + AGENT_GRACE_S + 30, (took, text[-4000:])
        assert "rank 0: lost the other ranks during denoising step" in text, text[-3000:]
    assert not (tmp_path / "out").exists()
