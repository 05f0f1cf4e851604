"""Health latency while many studio tabs wait behind one long job (issue: studio sessions starved the API).

Starts ``pusa serve``'s app on 127.0.0.1 in a child process (the tiny model, each denoising step
slowed so one job runs for minutes), queues one long job through the API, then opens N studio
sessions the way the page does (``/gradio_api/queue/join`` + the ``queue/data`` event stream), each
generating behind that job. Once every session follows its queued job, it probes ``/api/health``
for a fixed number of requests and prints one JSON object: p50 / p99 / max latency in ms and the
probes left unanswered for 10 s, idle (before the sessions) and waiting (with them). Everything is
bounded; the server is stopped at the end.

Usage: python benchmarks/bench_health.py [--sessions 100] [--probes 200] [--interval 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

STEP_DELAY = 5.0  # seconds per denoising step of the long job: it outlasts the measurement
SETUP_TIMEOUT = 180.0
PROBE_TIMEOUT = 10.0


# ---------------------------------------------------------------------------------------------- the server (child)


def serve(port: int, data_dir: Path, model: Path) -> None:
    """The child process: the real app on the tiny model, denoising slowed by STEP_DELAY per step."""
    import uvicorn

    from pusa.service.app import create_app
    from pusa.service.config import ServiceConfig
    from pusa.service.engine import pipeline_loader

    config = ServiceConfig(data_dir=data_dir, model=model, engine_options={"device": "cpu", "dtype": "fp32"})
    real = pipeline_loader(config)

    def load(on_progress: Any) -> Any:
        engine = real(on_progress)
        inner = engine.generate

        def generate(settings: Any, *, images: Any, video: Any, callback: Any) -> Any:
            def slowed(info: Any) -> None:
                callback(info)
                if info.phase == "denoise":
                    time.sleep(STEP_DELAY)

            return inner(settings, images=images, video=video, callback=slowed)

        engine.generate = generate
        return engine

    app = create_app(config, loader=load, studio=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# ---------------------------------------------------------------------------------------------- the client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(ms: list[float]) -> dict[str, float]:
    xs = sorted(ms)
    pick = lambda q: xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]  # noqa: E731
    return {"n": len(xs), "p50_ms": round(pick(0.5), 2), "p99_ms": round(pick(0.99), 2), "max_ms": round(xs[-1], 2)}


async def probe_health(client: httpx.AsyncClient, n: int, interval: float) -> dict[str, Any]:
    """``n`` sequential probes; one that gets no answer within PROBE_TIMEOUT counts as a timeout."""
    ms, timeouts = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        try:
            (await client.get("/api/health", timeout=PROBE_TIMEOUT)).raise_for_status()
        except httpx.TimeoutException:
            timeouts += 1
        ms.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(interval)
    return {**percentiles(ms), "timeouts": timeouts}


async def session(client: httpx.AsyncClient, api: str, body: dict[str, Any], following: asyncio.Event,
                  counter: list[int], total: int, stop: asyncio.Event) -> None:
    """One studio tab: join the queue, then read its event stream until told to stop."""
    body = {**body, "session_hash": uuid.uuid4().hex}
    (await client.post(f"{api}/queue/join", json=body, timeout=60)).raise_for_status()
    seen = False
    async with client.stream("GET", f"{api}/queue/data", params={"session_hash": body["session_hash"]},
                             timeout=httpx.Timeout(60, read=None)) as stream:
        async for line in stream.aiter_lines():
            if not seen and line.startswith("data:") and "data-status" in line and "queued" in line:
                seen = True  # its job is queued and the tab is following it
                counter[0] += 1
                if counter[0] == total:
                    following.set()
            if stop.is_set() or '"process_completed"' in line:
                return


async def measure(url: str, sessions: int, probes: int, interval: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=sessions + 20, max_keepalive_connections=sessions + 20)
    async with httpx.AsyncClient(base_url=url, limits=limits) as client:
        deadline = time.time() + SETUP_TIMEOUT
        while True:
            try:
                ready = (await client.get("/api/ready")).status_code == 200
                studio = (await client.get("/api/studio")).json()["state"] == "ready"
                if ready and studio:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise RuntimeError("server did not become ready")
            await asyncio.sleep(0.5)
        idle = await probe_health(client, probes, interval)
        long_job = {"prompt": "the long job", "steps": 50, "width": 64, "height": 64, "frames": 9, "cfg": 1.0}
        r = await client.post("/api/jobs", data={"settings": json.dumps(long_job)})
        r.raise_for_status()
        config = (await client.get("/config")).json()
        api = config["api_prefix"]
        comps = {c["id"]: c for c in config["components"]}
        trigger = next(i for i, c in comps.items() if c["props"].get("elem_id") == "t2v-generate")
        dep = next(d for d in config["dependencies"] if any(t[0] == trigger for t in d["targets"]))
        values = [comps[i]["props"].get("value") for i in dep["inputs"]]
        values[[comps[i]["props"].get("elem_id") for i in dep["inputs"]].index("t2v-prompt")] = "a waiting tab"
        body = {"data": values, "event_data": None, "fn_index": dep["id"], "trigger_id": trigger}
        following, stop, counter = asyncio.Event(), asyncio.Event(), [0]
        tasks = [asyncio.create_task(session(client, api, body, following, counter, sessions, stop))
                 for _ in range(sessions)]
        try:
            try:
                await asyncio.wait_for(following.wait(), SETUP_TIMEOUT)
            except asyncio.TimeoutError:
                raise RuntimeError(f"only {counter[0]} of {sessions} sessions follow a queued job") from None
            waiting = await probe_health(client, probes, interval)
            still = sum(1 for t in tasks if not t.done())
        finally:
            stop.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return {"sessions": sessions, "sessions_following_at_end": still, "idle": idle, "waiting": waiting}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--probes", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between two health probes")
    ap.add_argument("--serve", nargs=3, metavar=("PORT", "DATA_DIR", "MODEL"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]), Path(args.serve[2]))
        return 0
    from pusa.testing.layouts import write_tiny_diffusers

    with tempfile.TemporaryDirectory(prefix="pusa-bench-health-") as tmp:
        model = write_tiny_diffusers(Path(tmp) / "tiny", seed=0)
        port = free_port()
        child = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(Path(tmp) / "data"), str(model)],
                                 env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        print(f"bench_health: server at http://127.0.0.1:{port} (pid {child.pid})", file=sys.stderr)
        try:
            result = asyncio.run(measure(f"http://127.0.0.1:{port}", args.sessions, args.probes, args.interval))
        finally:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
