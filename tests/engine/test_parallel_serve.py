"""``pusa serve --nproc 2``: the service's one worker drives a group of two ranks (Ulysses 2 over gloo).

One test walks the whole life of a group, since each start loads the model in three processes:
a job equal to the single-process video, a cancel that reaches both ranks (the group carries on),
a rank killed mid-job (the job fails with a message, health shows the restart, the next job runs on
the new group).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

JOB = {"task": "t2v", "prompt": "a red ball", "steps": 2, "seed": 3, "cfg": 5.0}
LONG = {**JOB, "steps": 50, "frames": 33}  # chained windows: long enough to act on while it runs


def _wait(service, job_id: str, statuses: tuple[str, ...], timeout: float = 400, phase: str | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = service.get(job_id)
        if job.status in statuses and (phase is None or (job.phase == phase and (job.step or 0) > 0)):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} is {service.get(job_id).status}, not {statuses}, after {timeout} s")


def _rank_pid(pool, rank: int) -> int:
    import psutil

    for child in psutil.Process(pool._proc.pid).children(recursive=True):
        env = child.environ()
        if env.get("RANK") == str(rank) and "TORCHELASTIC_RUN_ID" in env:
            return child.pid
    raise AssertionError(f"no rank {rank} under the launcher")


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks through /proc")
def test_a_service_worker_drives_two_ranks(tiny_diffusers, tmp_path):
    from pusa.media import read_video_frames, save_video
    from pusa.parallel.pool import RankPool
    from pusa.pipeline import PusaPipeline
    from pusa.service.config import ServiceConfig
    from pusa.service.engine import ModelHost, pipeline_loader
    from pusa.service.jobs import JobService
    from pusa.settings import GenerationSettings

    parallel = {"degrees": {"cfg": 1, "ring": 1, "ulysses": 2}, "timeout": 60.0}
    config = ServiceConfig(data_dir=tmp_path / "data", model=tiny_diffusers, studio=False,
                           engine_options={"device": "cpu", "parallel": parallel})
    service = JobService(config, ModelHost(pipeline_loader(config), "tiny"))
    service.start()
    pool = None
    try:
        assert service.wait_for_model(timeout=400) and service.model_ready
        pool = service.host.engine
        assert isinstance(pool, RankPool)
        assert service.health()["model"]["components"]["ranks"] == "ready (Ulysses 2 (2 ranks))"

        # 1. a job: the single-process video
        done = _wait(service, service.submit(dict(JOB)).id, ("succeeded", "failed"))
        assert done.status == "succeeded", done.error
        alone = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu")
        save_video(alone.generate(GenerationSettings.parse(dict(JOB))), tmp_path / "alone.mp4")
        ours = np.stack([np.asarray(f) for f in read_video_frames(service.output_path(done))]).astype(int)
        theirs = np.stack([np.asarray(f) for f in read_video_frames(tmp_path / "alone.mp4")]).astype(int)
        # the same video up to float rounding (the ranks split attention, so sums run in another order);
        # H.264 of this noise-like test video turns such last-bit differences into a few larger
        # pixel errors (measured on an AVX-512 CPU: mean 0.09 level, 1.4% of values over 2, max 19),
        # while a wrong split changes the whole picture (tens of levels on average)
        assert ours.shape == theirs.shape
        diff = np.abs(ours - theirs)
        assert diff.mean() <= 0.5 and (diff > 2).mean() <= 0.05, (diff.mean(), (diff > 2).mean(), diff.max())

        # 2. cancel while denoising: every rank stops at the same step, the group carries on
        job = service.submit(dict(LONG))
        _wait(service, job.id, ("running",), phase="denoise")
        assert service.cancel_or_delete(job.id) == "cancelling"
        assert _wait(service, job.id, ("cancelled", "succeeded", "failed")).status == "cancelled"
        assert pool.restarts == 0

        # 3. a rank killed mid-job: the job fails naming it, health shows the restart, the next job runs
        job = service.submit(dict(LONG))
        _wait(service, job.id, ("running",), phase="denoise")
        os.kill(_rank_pid(pool, 1), signal.SIGKILL)
        failed = _wait(service, job.id, ("failed", "succeeded", "cancelled"), timeout=120)
        assert failed.status == "failed"
        assert "worker group" in failed.error and "restarting" in failed.error, failed.error
        assert pool.restarts == 1
        assert service.health()["model"]["components"]["ranks"].startswith(("restarting", "starting", "ready"))
        again = _wait(service, service.submit(dict(JOB)).id, ("succeeded", "failed"))
        assert again.status == "succeeded", again.error
        assert service.health()["model"]["components"]["ranks"] == "ready (Ulysses 2 (2 ranks))"
    finally:
        service.stop()
        if pool is not None:
            pool.close()
