"""``benchmarks/bench_decode.py``'s light-decoder case runs on a real model folder and times what it says."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_decode  # noqa: E402
from pytest import approx  # noqa: E402


def test_the_light_decoder_case_decodes_with_a_narrower_decoder(tiny_diffusers, tmp_path):
    settings = {"prompt": "a ball", "task": "t2v", "size": "64x48", "frames": 5, "steps": 1, "seed": 0}
    exact = {"total_s": 2.0, "decode_s": 1.0, "decode_share": 0.5}
    out = bench_decode.bench_light_decoder(tiny_diffusers, tmp_path / "light", settings, 1, exact, width=0.5)
    assert out["width"] == 0.5 and out["decoder_base_dim"] == 4  # the tiny test VAE has base_dim 8
    for dtype in ("fp32", "bf16"):
        r = out[dtype]
        # (the timings are printed rounded to the millisecond: compare loosely)
        assert 0 < r["decode_s"] < r["total_s"] and r["decode_share"] == approx(r["decode_s"] / r["total_s"], abs=0.05)
        rest_share = r["decode_s"] / (r["decode_s"] + 1.0)  # the exact run's rest: 2.0 - 1.0 s
        assert r["decode_share_exact_rest"] == approx(rest_share, abs=0.002)
        assert r["decode_speedup_vs_exact"] == approx(1.0 / r["decode_s"], rel=0.05)
