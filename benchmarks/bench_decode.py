"""VAE decode benchmark (issue 13): where a CPU render spends its time, and what oneDNN convolutions save.

Prints one JSON object:

- ``default``: the bundled model's default clip (64x64, 33 frames, 10 steps, its default cfg), total
  and decode seconds, with the exact decode and with ``fast_decode=True`` (oneDNN convolutions and
  direct RMS norms, ``pusa/latent_codec.py``), and how many uint8 pixel values the two disagree on.
- ``mid``: a mid-size model (DiT dim 512 x 8 layers, Wan VAE base_dim 32, as ``bench_engine.py``'s
  ``mid``) at 128x128x33: decode seconds and decode share of the total, both backends.
- ``mid.bf16_vae``: the same request with a bfloat16 VAE and the fast decode (``--vae-dtype bf16``):
  decode seconds and share, against the exact float32 decode, and its pixel differences.
- ``mid.light_decoder``: the same request decoded by a decoder of half and of three quarters the
  width, of the same latent space (``--decoder``), float32 and bf16: decode seconds and share against the exact decode (speed only;
  its quality is measured where one is trained, ``python -m pusa.training.light_decoder``).
- ``mid.compute``: the decode's floating-point work (``FlopCounterMode``) and the rate the fast
  decode reaches: how near the CPU's peak its convolutions already run.
- ``profile`` (``--profile``): the top operators of one exact default-clip decode (self CPU time
  share), and ``mid.profile`` those of one fast mid-size decode; ``mid.bf16_vae.convolutions`` the
  rate of each convolution shape of one bf16 decode, their part of it, and the decode share a decode
  made of nothing but those convolutions would have (the floor for this decoder and precision).
- every faster decode also gives ``decode_share_exact_rest``: its decode against the exact run's rest
  of the request (the denoise varies by several percent between pipelines on a CPU).
- ``threads`` and ``load_avg`` (1/5/15 min): a shared, busy machine shows here, and a figure measured on
  one is not an idle-machine figure.

Usage: python benchmarks/bench_decode.py [--model DIR] [--mid-steps 10] [--repeats 2] [--skip-mid] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _timed(pipe, settings: dict, fast: bool, repeats: int) -> tuple[dict, np.ndarray]:
    """Best-of-``repeats`` timings of one request with the exact or the fast decode, and its frames."""
    from pusa.settings import GenerationSettings

    pipe.codec.fast_decode = fast
    pipe.generate(GenerationSettings.parse({**settings, "steps": 1}))  # warm-up
    best, frames = None, None
    for _ in range(repeats):
        result = pipe.generate(GenerationSettings.parse(settings))
        if best is None or result.timings["total"] < best["total"]:
            best, frames = result.timings, result.frames
    total, decode = best["total"], best["decode"]
    return {"total_s": round(total, 3), "decode_s": round(decode, 3), "denoise_s": round(best["denoise"], 3),
            "decode_share": round(decode / total, 3)}, frames


def _differences(a: np.ndarray, b: np.ndarray) -> dict:
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return {"uint8_max_diff": int(diff.max()), "uint8_values_differing": round(float((diff > 0).mean()), 6),
            "uint8_mean_diff": round(float(diff.mean()), 4)}


def _compare(pipe, settings: dict, repeats: int) -> tuple[dict, np.ndarray]:
    """Exact against fast decode of the same request; also returns the exact decode's frames."""
    exact, a = _timed(pipe, settings, False, repeats)
    fast, b = _timed(pipe, settings, True, repeats)
    pipe.codec.fast_decode = False
    return {"exact": exact, "fast": fast, "decode_speedup": round(exact["decode_s"] / fast["decode_s"], 2),
            **_differences(a, b)}, a


def bench_default(model: str | None, repeats: int) -> tuple[dict, object]:
    from pusa.bundled import default_model_dir
    from pusa.pipeline import PusaPipeline

    pipe = PusaPipeline.from_pretrained(model or default_model_dir(), device="cpu")
    d = pipe.defaults
    settings = {"prompt": "a large red circle moving right slow", "task": "t2v", "steps": 10, "seed": 0,
                "width": d.width, "height": d.height, "frames": d.frames}
    return {"model": pipe.label, "size": f"{d.width}x{d.height}", "frames": d.frames, "steps": 10,
            **_compare(pipe, settings, repeats)[0]}, pipe


def bench_mid(steps: int, repeats: int, profile: bool = False) -> dict:
    from pusa.pipeline import PusaPipeline
    from pusa.testing import layouts

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "mid"
        old_dit, old_vae = dict(layouts.TINY_DIT), layouts.TINY_VAE_BASE_DIM
        layouts.TINY_DIT.update(dict(num_attention_heads=8, attention_head_dim=64, ffn_dim=1536, num_layers=8,
                                    text_dim=32, freq_dim=256))
        layouts.TINY_VAE_BASE_DIM = 32
        try:
            layouts.write_tiny_diffusers(root)
        finally:
            layouts.TINY_DIT.clear()
            layouts.TINY_DIT.update(old_dit)
            layouts.TINY_VAE_BASE_DIM = old_vae
        pipe = PusaPipeline.from_pretrained(root, device="cpu")
        settings = {"prompt": "a red ball bounces", "task": "t2v", "size": "128x128", "frames": 33, "steps": steps,
                    "seed": 0}
        compared, exact_frames = _compare(pipe, settings, repeats)
        result = {"size": "128x128", "frames": 33, "steps": steps, "vae_base_dim": 32, **compared}
        result["compute"] = decode_compute(pipe, 128, 128, 33, result["fast"]["decode_s"])
        if profile:
            result["profile"] = profile_decode(pipe, 128, 128, 33, fast=True)
        del pipe
        result["bf16_vae"] = bench_bf16_vae(root, settings, repeats, exact_frames, result["exact"], profile)
        result["light_decoder"] = [bench_light_decoder(root, Path(tmp) / f"light-{w}", settings, repeats,
                                                       result["exact"], w) for w in (0.5, 0.75)]
        return result


def bench_light_decoder(root: Path, folder: Path, settings: dict, repeats: int, exact: dict,
                        width: float = 0.5) -> dict:
    """The same request decoded by a decoder of ``width`` times the channels (``--decoder``, ``pusa.light_decoder``),
    in float32 and bfloat16 with the fast kernels: its decode share against the exact decode's.

    Speed only: the decoder is ``narrow_vae``'s pruned start of this random-weight VAE (the time of a
    convolution does not depend on its weights), so its pixels mean nothing here. What a trained one
    costs in quality is measured when one is trained (``python -m pusa.training.light_decoder``
    writes it to ``light_decoder.json``; docs/training.md has the bundled model's).
    """
    from pusa.light_decoder import decoder_width, narrow_vae
    from pusa.loading.components import load_vae
    from pusa.pipeline import PusaPipeline

    narrow_vae(load_vae(root / "vae", torch.float32), width).save_pretrained(str(folder), safe_serialization=True)
    result: dict = {"width": width}
    for dtype in ("fp32", "bf16"):
        pipe = PusaPipeline.from_pretrained(root, device="cpu", vae_dtype=dtype, decoder=folder)
        timings, _ = _timed(pipe, settings, True, repeats)
        result["decoder_base_dim"] = decoder_width(pipe.codec.decoder)
        result[dtype] = {**timings, **_against_exact(timings, exact)}
        del pipe
    return result


def bench_bf16_vae(root: Path, settings: dict, repeats: int, exact_frames: np.ndarray, exact: dict,
                   profile: bool = False) -> dict:
    """The same request with ``vae_dtype="bf16"`` and the fast decode (``--vae-dtype bf16``): its decode
    share against the exact float32 decode's, and how far its pixels are from that decode's.

    bf16 convolutions halve the work only on a CPU with AVX512-BF16 or AMX (``cpu_bf16``); elsewhere
    oneDNN emulates them and they are slower than float32.
    """
    from pusa.pipeline import PusaPipeline

    pipe = PusaPipeline.from_pretrained(root, device="cpu", vae_dtype="bf16")
    timings, frames = _timed(pipe, settings, True, repeats)
    result = {"cpu_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()), "fast": timings,
              **_against_exact(timings, exact),
              **_differences(exact_frames, frames)}
    if profile:
        width, height = (int(v) for v in settings["size"].split("x"))
        result["convolutions"] = convolution_rates(pipe, width, height, settings["frames"], timings)
    return result


def _against_exact(timings: dict, exact: dict) -> dict:
    """A decode's speed-up and share against the exact decode's. The rest of a request (mostly the
    denoise) varies by several percent from one pipeline to the next on a CPU, so the share is also
    given with the exact run's rest (``decode_share_exact_rest``): what the decode alone changed."""
    rest = exact["total_s"] - exact["decode_s"]
    share = timings["decode_s"] / (timings["decode_s"] + rest)
    return {"decode_speedup_vs_exact": round(exact["decode_s"] / timings["decode_s"], 2),
            "decode_share_vs_exact": round(timings["decode_share"] / exact["decode_share"], 2),
            "decode_share_exact_rest": round(share, 3),
            "decode_share_exact_rest_vs_exact": round(share / exact["decode_share"], 2)}


def convolution_rates(pipe, width: int, height: int, frames: int, timings: dict, top: int = 8) -> dict:
    """Each convolution shape of one fast decode: calls, milliseconds and GFLOP/s (most time first).

    If every shape already runs near the rate of one large convolution timed alone
    (``reference_gflop_per_s``: the decoder's full-resolution 3x3x3 one, in its dtype), the decode is
    compute-bound; ``conv_only_share`` is then the lowest decode share this decoder can reach at this
    precision (its convolutions' time against the measured rest of the request).
    """
    from math import prod

    from torch.profiler import ProfilerActivity, profile

    z = torch.randn(pipe.family.latent_shape(width, height, frames), generator=torch.Generator().manual_seed(0))
    pipe.codec.fast_decode = True
    pipe.codec.decode(z)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        started = time.perf_counter()
        pipe.codec.decode(z)
        seconds = time.perf_counter() - started
    shapes = []
    for e in prof.key_averages(group_by_input_shape=True):
        if e.key != "aten::mkldnn_convolution":
            continue
        x, w = e.input_shapes[0], e.input_shapes[1]
        # the decoder's 3-D convolutions get their causal and spatial padding beforehand (output = input - k + 1);
        # its 2-D ones (the upsamplers', 3x3 with padding 1, and 1x1) keep the input's size
        out = [x[2 + i] - w[2 + i] + 1 for i in range(3)] if len(w) == 5 else list(x[2:])
        gflop = 2 * x[0] * w[0] * w[1] * prod(w[2:]) * prod(out) * e.count / 1e9
        ms = e.self_cpu_time_total / 1e3
        shapes.append({"input": x, "weight": w, "calls": e.count, "ms": round(ms, 1),
                       "gflop_per_s": round(gflop / (ms / 1e3), 1)})
    if not shapes:  # a PyTorch without oneDNN: no convolution went through it, nothing to rate
        return {"decode_s_profiled": round(seconds, 3), "largest": []}
    conv_s = sum(s["ms"] for s in shapes) / 1e3
    shapes.sort(key=lambda s: -s["ms"])
    rest = timings["total_s"] - timings["decode_s"]
    return {"reference_gflop_per_s": _reference_rate(shapes[0]["input"], shapes[0]["weight"], pipe.codec.dtype),
            "decode_s_profiled": round(seconds, 3), "conv_s": round(conv_s, 3),
            "conv_part_of_decode": round(conv_s / seconds, 3), "conv_only_share": round(conv_s / (conv_s + rest), 3),
            "largest": shapes[:top]}


def _reference_rate(x_shape: list[int], w_shape: list[int], dtype: torch.dtype, repeats: int = 5) -> float:
    """GFLOP/s of one convolution of these shapes timed alone on oneDNN (best of ``repeats``)."""
    from math import prod

    x, w = torch.randn(x_shape, dtype=dtype), torch.randn(w_shape, dtype=dtype)
    zeros = [0] * (len(w_shape) - 2)
    ones = [1] * (len(w_shape) - 2)
    conv = lambda: torch.mkldnn_convolution(x, w, None, zeros, ones, ones, 1)  # noqa: E731
    conv()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        conv()
        best = min(best, time.perf_counter() - started)
    out = [x_shape[2 + i] - w_shape[2 + i] + 1 for i in range(len(w_shape) - 2)]
    return round(2 * x_shape[0] * w_shape[0] * w_shape[1] * prod(w_shape[2:]) * prod(out) / 1e9 / best, 1)


def decode_compute(pipe, width: int, height: int, frames: int, seconds: float) -> dict:
    """Floating-point work of one decode and the rate ``seconds`` implies: how close to the CPU's peak it runs.

    A decode that already runs its convolutions near the cores' peak cannot be made much faster
    without doing less arithmetic (a narrower decoder, lower precision), whatever the scheduling.
    """
    from torch.utils.flop_counter import FlopCounterMode

    z = torch.randn(pipe.family.latent_shape(width, height, frames), generator=torch.Generator().manual_seed(0))
    fast, pipe.codec.fast_decode = pipe.codec.fast_decode, False  # aten.convolution: what the counter knows
    try:
        with FlopCounterMode(display=False) as counter:
            pipe.codec.decode(z)
    finally:
        pipe.codec.fast_decode = fast
    flops = counter.get_total_flops()
    return {"gflop": round(flops / 1e9, 1), "gflop_per_s": round(flops / 1e9 / seconds, 1),
            "threads": torch.get_num_threads()}


def profile_decode(pipe, width: int, height: int, frames: int, top: int = 8, fast: bool = False) -> list[dict]:
    """Self-CPU share of the top operators in one decode (exact, or ``fast``) of a latent of that size."""
    from torch.profiler import ProfilerActivity, profile

    z = torch.randn(pipe.family.latent_shape(width, height, frames), generator=torch.Generator().manual_seed(0))
    pipe.codec.fast_decode = fast
    pipe.codec.decode(z)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        pipe.codec.decode(z)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [{"op": e.key, "share": round(e.self_cpu_time_total / total, 3), "calls": e.count} for e in events[:top]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model folder (default: the bundled pusa-tiny)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--mid-steps", type=int, default=10)
    p.add_argument("--skip-mid", action="store_true")
    p.add_argument("--profile", action="store_true")
    a = p.parse_args(argv)
    out: dict = {"threads": torch.get_num_threads(), "load_avg_before": [round(v, 2) for v in os.getloadavg()]}
    started = time.perf_counter()
    out["default"], pipe = bench_default(a.model, a.repeats)
    if a.profile:
        d = pipe.defaults
        out["profile"] = profile_decode(pipe, d.width, d.height, d.frames)
    if not a.skip_mid:
        out["mid"] = bench_mid(a.mid_steps, a.repeats, profile=a.profile)
    out["load_avg_after"] = [round(v, 2) for v in os.getloadavg()]
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
