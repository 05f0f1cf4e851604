"""Quality cost of the speed options on the bundled model: fp8 weights and every step cache.

For each option, the same requests (i2v and t2v, default settings, fixed seeds) run with and without
it; the figure is the PSNR (dB) of the decoded frames against the default run, and for the caches the
share of DiT forwards they skipped. MagCache is first calibrated on a copy of the bundled model (the
command users run: ``pusa calibrate-magcache``). The issue's targets: fp8 >= 30 dB; fbcache skipping
>= 30% of forwards at >= 30 dB.

Usage: python benchmarks/bench_quality.py [--thresholds 0.05,0.1,0.2] [--steps 10]   (prints JSON)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from pusa.bundled import default_model_dir
from pusa.pipeline import PusaPipeline
from pusa.settings import GenerationSettings
from pusa.speed.magcache import calibrate, ratios_path, write_ratios
from pusa.training.scenes import held_out_clip


def _picture() -> Image.Image:
    """The issue's picture (navy sky, green ground, red ball): a held-out kind the model never saw."""
    clip = held_out_clip("photo", 0, np.random.default_rng(0), 64, 64, 1)
    return Image.fromarray(clip.frames[0])


REQUESTS = [
    ("i2v", {"task": "i2v", "prompt": "a large red circle moving right", "noise_multipliers": "0.2", "seed": 1}),
    ("t2v", {"task": "t2v", "prompt": "a small blue square moving up", "seed": 2}),
]


def run_all(pipe: PusaPipeline, steps: int) -> dict[str, tuple[np.ndarray, dict]]:
    out = {}
    for name, raw in REQUESTS:
        s = pipe.validate(GenerationSettings.parse({**raw, "steps": steps}), n_images=int(name == "i2v"))
        r = pipe.generate(s, images=[_picture()] if name == "i2v" else None)
        out[name] = (r.frames.astype(np.float64), dict(r.stats))
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else round(10 * np.log10(255.0 ** 2 / mse), 2)


def compare(name: str, runs: dict, base: dict) -> dict:
    forwards = sum(s["forwards"] for _, s in runs.values())
    skipped = sum(s["skipped"] for _, s in runs.values())
    return {"option": name, "psnr_db": {k: psnr(runs[k][0], base[k][0]) for k in runs},
            "forwards": forwards, "skipped": skipped, "skipped_share": round(skipped / max(forwards, 1), 3)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--thresholds", default="0.05,0.1,0.2,0.3", help="fbcache and magcache thresholds to try")
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args(argv)
    thresholds = [float(t) for t in args.thresholds.split(",")]
    model = default_model_dir()
    base = run_all(PusaPipeline.from_pretrained(model, device="cpu"), args.steps)
    records = [compare("fp8", run_all(PusaPipeline.from_pretrained(model, device="cpu", weights="fp8"),
                                      args.steps), base)]
    for t in thresholds:
        pipe = PusaPipeline.from_pretrained(model, device="cpu", cache="fbcache", cache_threshold=t)
        records.append(compare(f"fbcache {t}", run_all(pipe, args.steps), base))
    records.append(compare("taylorseer", run_all(PusaPipeline.from_pretrained(model, device="cpu",
                                                                             cache="taylorseer"), args.steps), base))
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "pusa-tiny"
        shutil.copytree(model, copy)
        calibrating = PusaPipeline.from_pretrained(copy, device="cpu")
        s = calibrating.validate(GenerationSettings.parse({"prompt": REQUESTS[1][1]["prompt"], "steps": args.steps,
                                                           "seed": 0}))
        write_ratios(ratios_path(copy), calibrate(calibrating, s), s.to_public_dict())
        for t in thresholds:
            pipe = PusaPipeline.from_pretrained(copy, device="cpu", cache="magcache", cache_threshold=t)
            records.append(compare(f"magcache {t}", run_all(pipe, args.steps), base))
    json.dump({"model": "pusa-tiny (bundled)", "steps": args.steps, "records": records}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
