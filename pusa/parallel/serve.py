"""The ranks' side of ``pusa serve --nproc N``: load once, then run the service's jobs together.

Started by :class:`pusa.parallel.pool.RankPool` as ``python -m torch.distributed.run ... -m
pusa.parallel.serve``. Rank 0 connects back to the service over the loopback (an authenticated
``multiprocessing`` connection), takes each job the service's worker hands it and broadcasts it to
the other ranks; while idle it broadcasts a heartbeat every :data:`HEARTBEAT_S`, so no rank ever
waits longer than that for the next message (the group's timeout bounds every wait).

Cancel: rank 0 reads the service's cancel between steps, and at every denoising step all ranks
agree on it (one tiny all-reduce), so every rank stops at the same step. An error that is the
request's (``InputError``) happens on every rank alike and ends only the job; any other error ends
this rank's process, torchrun stops the others, and the service fails the job and starts the group
again.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import sys
from dataclasses import replace
from multiprocessing.connection import Client, Connection
from typing import Any

from pusa.errors import GenerationCancelled, InputError
from pusa.parallel.degrees import Degrees
from pusa.parallel.runtime import RankGroup

log = logging.getLogger(__name__)

SPEC_ENV, ADDRESS_ENV, KEY_ENV = "PUSA_RANKS_SPEC", "PUSA_RANKS_ADDRESS", "PUSA_RANKS_KEY"
HEARTBEAT_S = 2.0


def send(conn: Connection, message: tuple) -> None:
    """Plain pickle over the connection: ``Connection.send`` would hand tensors over as shared file
    descriptors, which only processes of one ``multiprocessing`` family may open."""
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def recv(conn: Connection) -> tuple:
    return pickle.loads(conn.recv_bytes())


def _on_cpu(info: Any) -> Any:
    """A progress record as the service may receive it: tensors (the live preview's estimate) on the CPU."""
    denoised = getattr(info, "denoised", None)
    return replace(info, denoised=denoised.detach().cpu()) if denoised is not None else info


class _Canceller:
    """The step callback of one job on one rank: progress to the service (rank 0), agreed cancel."""

    def __init__(self, group: RankGroup, conn: Connection | None):
        self.group = group
        self.conn = conn
        self.asked = False

    def __call__(self, info: Any) -> None:
        if self.conn is not None:
            send(self.conn, ("progress", _on_cpu(info)))
            while self.conn.poll(0):
                if recv(self.conn)[0] == "cancel":
                    self.asked = True
        if info.phase == "denoise":  # every rank runs the same denoising steps: agree at each
            if self.group.all_agree(self.asked):
                raise GenerationCancelled("cancelled")
        elif self.asked and info.phase == "decode":  # rank 0 alone decodes
            raise GenerationCancelled("cancelled")


def run_job(group: RankGroup, pipe: Any, conn: Connection | None, job: dict[str, Any]) -> None:
    """Generate ``job`` on every rank; rank 0 writes it and answers the service. ``job``: ``settings``
    (resolved by the service, so the seed is fixed), ``images``, ``video`` (paths) and ``output``."""
    from pusa.long_video import generate_video
    from pusa.media import save_video

    def answer(*message: Any) -> None:
        if conn is not None:
            send(conn, message)

    try:
        result = generate_video(pipe, job["settings"], images=job["images"], video=job["video"],
                                callback=_Canceller(group, conn))
        if group.is_main:
            save_video(result, job["output"])
            answer("done", {"settings": result.settings, "timings": result.timings})
    except GenerationCancelled:
        answer("cancelled")
    except InputError as e:  # the request's fault, the same on every rank: the group carries on
        answer("input_error", str(e))
    except BaseException as e:
        answer("failed", f"rank {group.rank}: {type(e).__name__}: {e}")
        raise


def serve(group: RankGroup, pipe: Any, conn: Connection | None) -> None:
    """Jobs until the service goes away (rank 0 sees its connection close) or says stop."""
    while True:
        message: tuple = ("idle",)
        if conn is not None:
            try:
                if conn.poll(HEARTBEAT_S):
                    message = recv(conn)
            except (EOFError, OSError):
                message = ("stop",)
        message = group.broadcast_object(message)
        if message[0] == "stop":
            return
        if message[0] == "job":
            run_job(group, pipe, conn, message[1])


def main() -> int:
    """A rank of the service's worker group (the environment says what to load and where to report)."""
    from pusa.parallel.cli import quiet_rank
    from pusa.pipeline import PusaPipeline

    spec = json.loads(os.environ[SPEC_ENV])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    group = RankGroup.start(Degrees(**spec["degrees"]), spec["engine"].get("device", "auto"), spec["timeout"])
    quiet_rank(group)
    conn = None
    if group.is_main:
        host, port = os.environ[ADDRESS_ENV].rsplit(":", 1)
        conn = Client((host, int(port)), authkey=bytes.fromhex(os.environ[KEY_ENV]))
    report = (lambda component, status: send(conn, ("load", component, status))) if conn is not None else None
    pipe = PusaPipeline.from_pretrained(spec["model"], **group.load_kwargs(spec["engine"]), on_progress=report)
    group.attach(pipe)
    group.barrier()  # every rank loaded
    if conn is not None:
        send(conn, ("ready", group.degrees.describe()))
    try:
        serve(group, pipe, conn)
    finally:
        group.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
