"""Elapsed time and time left from measured step times (the studio's status line)."""

from __future__ import annotations

from pusa.family import WAN21
from pusa.service.store import Job
from pusa.service.studio.clock import StepClock, clock_text, decode_per_latent
from pusa.service.studio.render import status_html

FAMILY = WAN21.with_defaults(frames=33)


def job(status: str = "running", phase: str | None = "denoise", step: int = 0, total: int = 10, **kw) -> Job:
    base = dict(seq=1, id="abc", status=status, task="t2v", settings={}, resolved={"frames": 33}, images=[],
                video=None, created_at=100.0, started_at=110.0, phase=phase, step=step, total=total)
    base.update(kw)
    return Job(**base)


def test_time_left_follows_the_measured_step_rate_and_the_decode_still_to_come() -> None:
    clock = StepClock(decode_per_latent=0.5)  # 9 latent frames: 4.5 s of decode to come
    t = clock.observe(job(step=1), FAMILY, 0.1, now=120.0)
    assert t.elapsed == 10.0 and t.left is None  # one step seen: no rate yet
    t = clock.observe(job(step=3), FAMILY, 0.3, now=124.0)  # 2 s per step
    assert t.left == 7 * 2.0 + 4.5
    # decode: its own measured rate replaces the estimate
    clock.observe(job(phase="decode", step=1, total=9), FAMILY, 0.95, now=140.0)
    t = clock.observe(job(phase="decode", step=5, total=9), FAMILY, 0.96, now=144.0)
    assert t.left == 4 * 1.0
    assert 0.85 < t.fraction < 0.9  # the bar moves by time (34 of ~38 s), not stuck at the decode's 95%..


def test_the_bar_never_goes_back_and_a_finished_job_is_full() -> None:
    clock = StepClock()
    clock.observe(job(step=1), FAMILY, 0.2, now=111.0)
    first = clock.observe(job(step=2), FAMILY, 0.3, now=112.0).fraction
    assert clock.observe(job(step=2), FAMILY, 0.1, now=112.5).fraction >= first
    done = clock.observe(job(status="succeeded", finished_at=130.0), FAMILY, 1.0, now=200.0)
    assert done.fraction == 1.0 and done.elapsed == 20.0


def test_status_line_shows_elapsed_and_left() -> None:
    clock = StepClock()
    clock.observe(job(step=1), FAMILY, 0.2, now=120.0)
    times = clock.observe(job(step=2), FAMILY, 0.3, now=125.0)
    d = {"id": "abc", "status": "running", "progress": {"phase": "denoise", "step": 2, "total": 10, "fraction": 0.3},
         "cancel_requested": False}
    html = status_html("t2v", d, "en", True, times=times)
    assert "15 s elapsed · about 40 s left" in html and 'value="0.273"' in html
    assert clock_text(185) == "3 min 05 s"


def test_decode_rate_learned_from_the_last_succeeded_job() -> None:
    jobs = [job(status="failed"), job(status="succeeded", timings={"decode": 9.0})]
    assert decode_per_latent(jobs, FAMILY) == 1.0 and decode_per_latent(jobs, None) is None
