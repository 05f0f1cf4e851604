"""Model-scale measurement (issue 11, item 2): meta-device DiT, activation peak and FLOPs per forward."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from pusa.family import WAN21
from pusa.speed.options import SpeedOptions
from pusa.speed.scale import PeakBytes, gpu_attention, measure_forward, meta_dit
from pusa.testing.layouts import TINY_DIT
from pusa.velocity import WanVelocity

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_scale  # noqa: E402

# A small DiT at the real 480p token count: modulation memory scales with tokens x dim.
SMALL = dict(TINY_DIT, num_layers=2, num_attention_heads=4, attention_head_dim=64, ffn_dim=512, text_dim=64)
SHAPE = WAN21.latent_shape(832, 480, 81)


def _timestep(dit, modulation: str) -> torch.Tensor:
    frames = SHAPE[2]
    t = torch.full((frames,), 900.0) if modulation == "scalar" else torch.linspace(0, 1000, frames).round()
    v = WanVelocity([dit], WAN21, torch.empty(0), None, 1.0, SHAPE[3:], torch.device("cpu"), torch.bfloat16,
                    modulation="per_token" if modulation == "scalar" else modulation)
    return v.timestep(t)


def test_peak_bytes_equals_memtracker_activations():
    from torch.distributed._tools.mem_tracker import MemTracker

    dit = meta_dit(SMALL, SpeedOptions())
    ts = _timestep(dit, "per_token").to("meta")
    x = torch.empty(SHAPE, dtype=torch.bfloat16, device="meta")
    ctx = torch.empty(1, 64, 64, dtype=torch.bfloat16, device="meta")
    peak = PeakBytes().known(*dit.parameters(), *dit.buffers(), x, ctx, ts)
    with torch.no_grad(), gpu_attention(), peak:
        dit(hidden_states=x, timestep=ts, encoder_hidden_states=ctx, return_dict=False)
    dit.requires_grad_(True)  # MemTracker hooks every parameter; no_grad keeps autograd out
    tracker = MemTracker()
    tracker.track_external(dit, x, ctx, ts)
    with torch.no_grad(), gpu_attention(), tracker:
        dit(hidden_states=x, timestep=ts, encoder_hidden_states=ctx, return_dict=False)
    snapshot = next(iter(tracker.get_tracker_snapshot("peak").values()))
    activations = snapshot[next(k for k in snapshot if str(getattr(k, "value", k)) == "Activation")]
    assert peak.peak == activations > 0


def test_per_frame_peak_is_the_single_timestep_peak():
    dit = meta_dit(SMALL, SpeedOptions())
    got = {m: measure_forward(dit, SHAPE, _timestep(dit, m), 64) for m in ("scalar", "per_token", "per_frame")}
    scalar = got["scalar"]["peak_activation_bytes"]
    assert got["per_frame"]["peak_activation_bytes"] <= 1.05 * scalar
    assert got["per_token"]["peak_activation_bytes"] > 1.5 * scalar  # the waste per-frame removes
    assert got["per_frame"]["flops_per_forward"] < got["per_token"]["flops_per_forward"]


def test_attention_is_counted_as_flash_not_materialised():
    dit = meta_dit(SMALL, SpeedOptions())
    got = measure_forward(dit, SHAPE, _timestep(dit, "scalar"), 64)
    tokens = SHAPE[2] * SHAPE[3] * SHAPE[4] // 4
    dim = SMALL["num_attention_heads"] * SMALL["attention_head_dim"]
    assert got["flops_per_forward"] > SMALL["num_layers"] * 4 * tokens**2 * dim  # self-attention counted
    assert got["peak_activation_bytes"] < tokens**2  # no tokens x tokens score matrix


def test_bench_records_have_the_promised_keys(monkeypatch, capsys):
    monkeypatch.setattr(bench_scale, "dit_config", lambda: SMALL)
    monkeypatch.setattr(bench_scale, "MODULATIONS", ("scalar", "per_frame"))
    assert bench_scale.main(["--json", "--sizes", "832x480"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 2 * 2 * 2  # models x weights x modulations
    for r in records:
        assert {"model", "width", "height", "frames", "modulation", "weights", "flops_per_forward",
                "peak_activation_bytes", "param_bytes", "fits"} <= set(r)
        assert set(r["fits"]) == {"24GB", "48GB", "80GB", "141GB"}
    wan21 = next(r for r in records if r["model"] == "Wan2.1-14B")
    wan22 = next(r for r in records if r["model"] == "Wan2.2-A14B" and r["weights"] == wan21["weights"])
    assert wan22["param_bytes"] == 2 * wan21["param_bytes"]  # two experts


def test_bench_refuses_an_unknown_size():
    with pytest.raises(SystemExit) as e:
        bench_scale.main(["--sizes", "640x360"])
    assert e.value.code == 2
