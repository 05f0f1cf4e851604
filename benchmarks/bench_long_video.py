"""Long video on the bundled model: cost per output frame, peak memory, and how visible the seams are.

For 1x, 2x and 4x the native window (33, 65, 129 frames on pusa-tiny), each in its own process so
the peak RSS is that case's: seconds per output frame and peak memory. Then, for a 4x video with and
without colour matching (and for a few overlaps): the seam figure, the mean absolute difference
between consecutive frames where windows join against the same figure inside windows (1.0 = a seam
is as smooth as any other frame step), and the colour drift (mean RGB of the last 8 frames minus
the first 8). Prints one JSON object.

    python benchmarks/bench_long_video.py [--steps 10] [--quick]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

PROMPT = "a red circle moving right slowly"


def _run(frames: int, steps: int, seed: int, **extra):
    from pusa.bundled import default_model_dir
    from pusa.long_video import generate_video
    from pusa.pipeline import PusaPipeline
    from pusa.settings import GenerationSettings

    pipe = PusaPipeline.from_pretrained(default_model_dir(), device="cpu")
    settings = GenerationSettings.parse({"prompt": PROMPT, "steps": steps, "seed": seed, "frames": frames,
                                         "cfg": 1.0, **extra})
    t0 = time.perf_counter()
    result = generate_video(pipe, settings)
    frames_out = result.all_frames()
    return result, frames_out, time.perf_counter() - t0


def one_case(frames: int, steps: int) -> dict:
    """Run in a fresh process: time and peak memory of one length."""
    result, out, seconds = _run(frames, steps, seed=0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"frames": int(out.shape[0]), "windows": len(result.windows), "seconds": round(seconds, 2),
            "seconds_per_frame": round(seconds / out.shape[0], 4), "peak_rss_bytes": int(peak)}


def seam_figures(frames: np.ndarray, windows: list[dict]) -> dict:
    """Consecutive-frame differences at the first new frame of each window vs everywhere else."""
    diffs = np.abs(np.diff(frames.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))  # diffs[i]: frame i -> i+1
    seams = set()
    for w in windows[1:]:
        first_new = w["pixel_range"][0] + 4 * w["overlap"]  # first pixel frame of its first new latent
        seams.update(i for i in (first_new - 1, first_new) if 0 <= i < len(diffs))
    inside = [d for i, d in enumerate(diffs) if i not in seams]
    at = [diffs[i] for i in sorted(seams)]
    head, tail = frames[:8].reshape(-1, 3).mean(0), frames[-8:].reshape(-1, 3).mean(0)
    return {"seam_mad": round(float(np.mean(at)), 3), "inside_mad": round(float(np.mean(inside)), 3),
            "seam_ratio": round(float(np.mean(at) / max(np.mean(inside), 1e-6)), 3),
            "drift_rgb": [round(float(v), 2) for v in (tail - head)]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--quick", action="store_true", help="fewer seeds and variants (a smoke run)")
    p.add_argument("--seam-frames", type=int, default=129, help="length of the seam/drift runs (default 4x)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--case", type=int, help=argparse.SUPPRESS)  # internal: one length in this process
    args = p.parse_args()
    if args.case:
        print(json.dumps(one_case(args.case, args.steps)))
        return 0
    lengths = [33, 65, 129]
    cost = []
    for n in lengths:
        res = subprocess.run([sys.executable, __file__, "--case", str(n), "--steps", str(args.steps)],
                             capture_output=True, text=True, check=True)
        cost.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(json.dumps({"cost": cost[-1]}), file=sys.stderr, flush=True)  # partial results survive a stop
    base = cost[0]["peak_rss_bytes"]
    for c in cost:
        c["peak_vs_1x"] = round(c["peak_rss_bytes"] / base, 3)
    long = args.seam_frames
    seams = []
    variants = [{"overlap": 2, "color_match": True}, {"overlap": 2, "color_match": False}]
    if not args.quick:
        variants += [{"overlap": 1, "color_match": True}, {"overlap": 3, "color_match": True},
                     {"overlap": 2, "color_match": True, "overlap_multipliers": "0,0.2"}]
    for v in variants:
        figures = []
        for seed in range(1 if args.quick else args.seeds):
            result, out, _ = _run(long, args.steps, seed, **v)
            figures.append(seam_figures(out, result.windows))
        seams.append({**v, "frames": long, **{k: (round(float(np.mean([f[k] for f in figures])), 3)
                                                   if k != "drift_rgb" else
                                                   [round(float(x), 2) for x in np.mean([f[k] for f in figures], 0)])
                                                for k in figures[0]}})
        print(json.dumps({"seams": seams[-1]}), file=sys.stderr, flush=True)
    print(json.dumps({"model": "pusa-tiny (bundled)", "steps": args.steps, "cost": cost, "seams": seams}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
