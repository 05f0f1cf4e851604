"""``--nproc N``: start the same command as N ranks under ``torch.distributed.run`` and wait for them.

The launcher is torch's own (``python -m torch.distributed.run``, what ``torchrun`` runs), on one
node, with a free port on the loopback address: nothing leaves the machine. Its agent watches the
ranks and stops all of them as soon as one fails, so a crashed rank ends the run (exit 1) instead of
leaving the others waiting. This process only waits; Ctrl-C stops the ranks and exits 130.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from typing import Sequence

from pusa.parallel.degrees import Degrees

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
STOP_GRACE_S = 30.0  # how long the ranks get to stop after Ctrl-C before they are killed
SHUTDOWN_S = 10  # torchrun: how long the other ranks get to stop after one failed, before SIGKILL


def free_loopback_port() -> int:
    """A TCP port free on the loopback address now (the rendezvous binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def degree_flags(degrees: Degrees) -> list[str]:
    """The resolved degrees as options; appended last, they win over anything earlier on the line."""
    return ["--ulysses-degree", str(degrees.ulysses), "--ring-degree", str(degrees.ring),
            "--cfg-parallel", str(degrees.cfg)]


def without_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` less its ``--nproc N`` (any spelling argparse accepts): a rank learns the count from
    torchrun, and torchrun's own parser would take ``--nproc`` for an ambiguous ``--nproc-per-node``."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if len(name) > 3 and "--nproc".startswith(name):
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def torchrun_command(nproc: int, argv: Sequence[str], port: int | None = None,
                     module: str = "pusa.cli") -> list[str]:
    """``python -m torch.distributed.run`` for ``nproc`` local ranks of ``python -m module argv``."""
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(nproc),
            "--master-addr", LOOPBACK, "--master-port", str(port or free_loopback_port()),
            "--monitor-interval", "0.5", "--shutdown-timeout", str(SHUTDOWN_S), "-m", module, *argv]


def rank_environment(nproc: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The ranks' environment: collectives over the loopback interface, and a share of the CPU
    threads each (torchrun would otherwise warn and pick 1); the user's own settings win."""
    env = dict(os.environ if base is None else base)
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    env.setdefault("NCCL_SOCKET_IFNAME", "lo")
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def run_ranks(argv: Sequence[str], degrees: Degrees) -> int:
    """Run ``pusa argv`` as ``degrees.world`` ranks and return the exit code for this command:
    0 when every rank succeeded, 130 after Ctrl-C, 1 with a message when any rank failed."""
    command = torchrun_command(degrees.world, [*without_nproc(argv), *degree_flags(degrees)])
    log.info("launching %s: %s", degrees.describe(), " ".join(command))
    proc = subprocess.Popen(command, env=rank_environment(degrees.world), start_new_session=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a terminated launcher stops its ranks too
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        _stop(proc)
        print("cancelled", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code == 0:
        return 0
    print(f"error: the run on {degrees.world} ranks ({degrees.describe()}) failed: a rank ended with an error or "
          f"was killed, and the others were stopped (launcher exit {code}); the rank's message is above",
          file=sys.stderr)
    return 1


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(proc: subprocess.Popen) -> None:
    """Ctrl-C for the launcher (it forwards the signal to its ranks), then a kill after the grace time."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=STOP_GRACE_S)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
