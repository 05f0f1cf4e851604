"""The service's side of ``pusa serve --nproc N``: an :class:`pusa.service.engine.Engine` whose jobs run
on a worker group of N ranks (:mod:`pusa.parallel.serve`) started under ``torch.distributed.run``.

The service process keeps its queue, HTTP server and single worker thread; the worker hands each job
to rank 0 over an authenticated loopback connection and relays progress and cancel. The group's
state is reported as the model component ``ranks`` (``/api/health`` -> ``model.components``):
``ready (...)``, ``restarting: ...`` or ``failed: ...``. If a rank dies, torchrun stops the
others, the running job fails with a message naming what happened, and the group is started again
in the background; jobs wait for it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any, Callable

from pusa.errors import GenerationCancelled, InputError, PusaError
from pusa.parallel.degrees import Degrees, check_tokens
from pusa.parallel.launch import LOOPBACK, rank_environment, torchrun_command
from pusa.parallel.serve import ADDRESS_ENV, KEY_ENV, SPEC_ENV, recv, send
from pusa.speed.options import SpeedOptions

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, str], None]
POLL_S = 0.5


class RankGroupFailed(PusaError):
    """The worker group ended (a rank died, or it could not start)."""


@dataclass
class PoolResult:
    """What rank 0 wrote for one job (moved into place by :meth:`RankPool.save`)."""

    path: Path
    settings: Any
    timings: dict[str, float] = field(default_factory=dict)


class RankPool:
    """An ``Engine`` over a group of ranks; construct it from the service's model loader thread."""

    def __init__(self, model_dir: Path, engine_options: dict[str, Any], degrees: Degrees, timeout_s: float,
                 on_progress: ProgressFn, max_pixel_frames: int | None = None, load_timeout_s: float = 3600.0):
        from pusa.loading.layout import detect_layout

        layout = detect_layout(model_dir)
        self.model_dir = Path(model_dir)
        self.family = layout.family
        self.defaults = layout.family.defaults
        self.is_wan22 = layout.family.is_wan22
        self.label = f"{layout.label} on {degrees.describe()}"
        self.preset = engine_options.get("preset", "none")
        self.extra_lora_loaded = engine_options.get("extra_lora") is not None and (
            not self.is_wan22 or engine_options.get("extra_lora_low") is not None)
        self.speed = SpeedOptions(preset=self.preset)
        self.presets = self.speed.available_presets(self.extra_lora_loaded)
        self.degrees = degrees
        self.timeout_s = timeout_s
        self.load_timeout_s = load_timeout_s
        self.max_pixel_frames = max_pixel_frames
        self.spec = {"model": str(model_dir), "engine": engine_options, "degrees": degrees.__dict__,
                     "timeout": timeout_s}
        self._report = on_progress
        self._lock = threading.Lock()  # one job at a time, and never during a restart
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._tmp = Path(tempfile.mkdtemp(prefix="pusa-ranks-"))
        self.restarts = 0
        with self._lock:
            self._start_group()

    # ------------------------------------------------------------------ the group

    def _start_group(self) -> None:
        """Launch the ranks and wait until rank 0 says every rank has loaded (raises if they die first)."""
        key = secrets.token_bytes(32)
        listener = Listener((LOOPBACK, 0), authkey=key)
        env = rank_environment(self.degrees.world)
        env.update({SPEC_ENV: json.dumps(self.spec), ADDRESS_ENV: f"{LOOPBACK}:{listener.address[1]}",
                    KEY_ENV: key.hex()})
        self._report("ranks", f"starting {self.degrees.describe()}")
        self._proc = subprocess.Popen(torchrun_command(self.degrees.world, [], module="pusa.parallel.serve"),
                                      env=env, start_new_session=True)
        accepted: list[Connection] = []
        thread = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
        thread.start()
        deadline = time.monotonic() + self.load_timeout_s
        try:
            while not accepted:
                self._check_alive("while starting")
                if time.monotonic() > deadline:
                    raise RankGroupFailed(f"the ranks did not connect within {self.load_timeout_s:g} s")
                thread.join(POLL_S)
            conn = accepted[0]
            while True:
                message = self._recv(conn, deadline, "while loading")
                if message[0] == "load":
                    self._report(message[1], message[2])
                elif message[0] == "ready":
                    break
        except BaseException:
            self._stop_group()
            listener.close()
            raise
        listener.close()
        self._conn = conn
        self._report("ranks", f"ready ({message[1]})")

    def _check_alive(self, when: str) -> None:
        code = self._proc.poll() if self._proc is not None else -1
        if code is not None:
            raise RankGroupFailed(f"the worker group of {self.degrees.world} ranks ended {when} (launcher exit "
                                  f"{code}): a rank died or failed; see the server log")

    def _recv(self, conn: Connection, deadline: float | None, when: str) -> tuple:
        while True:
            try:
                if conn.poll(POLL_S):
                    return recv(conn)
            except (EOFError, OSError):
                self._wait_exit()
                self._check_alive(when)
                raise RankGroupFailed(f"rank 0 closed its connection {when}")
            self._check_alive(when)
            if deadline is not None and time.monotonic() > deadline:
                raise RankGroupFailed(f"the worker group did not answer {when}")

    def _wait_exit(self, timeout: float = 60.0) -> None:
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass

    def _stop_group(self) -> None:
        """Stop every rank (rank 0 tells the others when its connection closes; the launcher is killed
        if they take too long)."""
        if self._conn is not None:
            try:
                send(self._conn, ("stop",))
            except OSError:
                pass
            self._conn.close()
            self._conn = None
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, 9)
                self._proc.wait()

    def _restart_later(self, why: str) -> None:
        """Start the group again in the background; jobs wait on the lock meanwhile."""
        self._report("ranks", f"restarting: {why}")
        self.restarts += 1

        def restart() -> None:
            with self._lock:
                self._stop_group()
                try:
                    self._start_group()
                except Exception as e:  # noqa: BLE001 - reported; the next job tries again
                    log.exception("the worker group did not start again")
                    self._report("ranks", f"failed: {e}")

        threading.Thread(target=restart, name="pusa-ranks-restart", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            self._stop_group()
        shutil.rmtree(self._tmp, ignore_errors=True)

    # ------------------------------------------------------------------ Engine

    def validate(self, settings: Any, n_images: int, has_video: bool) -> Any:
        settings = self.speed.request_defaults(settings, self.extra_lora_loaded)
        resolved = settings.resolve(self.family, n_images=n_images, has_video=has_video,
                                    max_pixel_frames=self.max_pixel_frames)
        stride = self.family.spatial_stride
        check_tokens(self.degrees, self.family.tokens_per_frame(resolved.height // stride, resolved.width // stride),
                     f"{resolved.width}x{resolved.height}")
        return resolved

    def generate(self, settings: Any, *, images: list[Path] | None, video: Path | None,
                 callback: Callable[[Any], None]) -> PoolResult:
        with self._lock:
            if self._conn is None:
                self._start_group()  # the last start failed: try once more for this job
            out = self._tmp / f"{secrets.token_hex(8)}.mp4"
            job = {"settings": settings, "images": [str(p) for p in images] if images else None,
                   "video": str(video) if video else None, "output": str(out)}
            try:
                send(self._conn, ("job", job))
                return self._follow(out, callback)
            except (RankGroupFailed, OSError, EOFError) as e:  # the group or its connection is gone
                self._conn = None
                why = str(e) if isinstance(e, RankGroupFailed) else f"the connection to rank 0 broke ({e})"
                self._restart_later(why)
                raise RankGroupFailed(f"{why}; the job failed and the worker group is restarting") from None

    def _follow(self, out: Path, callback: Callable[[Any], None]) -> PoolResult:
        cancelled = False
        while True:
            message = self._recv(self._conn, None, "during the job")
            kind = message[0]
            if kind == "progress":
                try:
                    callback(message[1])
                except GenerationCancelled:
                    if not cancelled:
                        send(self._conn, ("cancel",))
                        cancelled = True
            elif kind == "done":
                return PoolResult(out, message[1]["settings"], message[1]["timings"])
            elif kind == "cancelled":
                raise GenerationCancelled("cancelled")
            elif kind == "input_error":
                raise InputError(message[1])
            elif kind == "failed":
                self._wait_exit()
                raise RankGroupFailed(f"a rank failed: {message[1]}")

    def save(self, result: PoolResult, path: Path) -> None:
        shutil.move(str(result.path), str(path))
        sidecar = result.path.with_suffix(".json")
        if sidecar.exists():
            shutil.move(str(sidecar), str(Path(path).with_suffix(".json")))


def pool_loader(config: Any) -> Callable[[ProgressFn], RankPool]:
    """The service's model loader for ``--nproc N``: ``config.engine_options["parallel"]`` holds the
    degrees and timeout (from :func:`pusa.parallel.cli.parallel_service_options`)."""

    def load(on_progress: ProgressFn) -> RankPool:
        options = dict(config.engine_options)
        parallel = options.pop("parallel")
        model_dir = config.model
        if model_dir is None:
            from pusa.bundled import default_model_dir

            model_dir = default_model_dir()
        return RankPool(Path(model_dir), options, Degrees(**parallel["degrees"]), parallel["timeout"], on_progress,
                        max_pixel_frames=config.max_pixel_frames)

    return load
