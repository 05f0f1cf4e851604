"""Outputs of every task, pinned bit for bit on tiny models (recorded before the architecture refactor).

A refactor of the engine must not change a single output value on CPU. Each case records a slice of
the final latents and a hash of the full latents and decoded frames, and the CPU instruction set
it ran on: on another one (AVX2 against AVX-512) float sums round differently, so there the slices
are compared to 1e-4 and one uint8 level and the hashes are not. To re-record after an
intended change of the numbers (never for a refactor): ``PUSA_RECORD_PINNED=1 pytest this file``.

The pins were recorded with diffusers' per-token timesteps, so they are checked in that mode; the
default per-frame modulation is held to them within 1e-5 by ``tests/engine/test_speed_modulation.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pusa.settings import GenerationSettings

from .helpers import gradient_image, moving_square_video

PINNED = Path(__file__).with_name("pinned_outputs.json")
RECORD = os.environ.get("PUSA_RECORD_PINNED") == "1"
# The CPU instruction set of records without a "cpu" key: bit for bit holds only on the same one.
RECORDED_ON = "AVX2"

CASES = {
    "t2v": dict(task="t2v"),
    "i2v": dict(task="i2v", noise_multipliers="0.3"),
    "keyframes": dict(task="keyframes", cond_positions="2,0", noise_multipliers="0,0.4"),
    "v2v": dict(task="v2v", cond_positions="0,1", noise_multipliers="0,0.2"),
    "t2v-cfg1": dict(task="t2v", cfg=1.0),
}


def _inputs(task: str, tmp_path: Path) -> dict:
    if task == "i2v":
        return {"images": [gradient_image(seed=3)]}
    if task == "keyframes":
        return {"images": [gradient_image(seed=1), gradient_image(seed=2)]}
    if task == "v2v":
        return {"video": moving_square_video(tmp_path / "in.mp4", frames=13)}
    return {}


def _fingerprint(result) -> dict:
    lat = result.latents.float().numpy()
    return {"latents_sha256": hashlib.sha256(np.ascontiguousarray(lat).tobytes()).hexdigest(),
            "frames_sha256": hashlib.sha256(np.ascontiguousarray(result.frames).tobytes()).hexdigest(),
            "latent_slice": [float(x) for x in lat[0, :3, :, 1, 2].reshape(-1)],
            "frame_slice": [int(x) for x in result.frames[:, 5, 7, :].reshape(-1)],
            "experts": list(result.experts), "cpu": torch.backends.cpu.get_cpu_capability()}


def _run(pipe, name: str, tmp_path: Path) -> dict:
    spec = dict(CASES[name])
    settings = GenerationSettings.parse({"prompt": "a red square moves right", "steps": 3, "seed": 11,
                                         "size": "64x48", **spec})
    result = pipe.generate(settings, return_latents=True, **_inputs(spec["task"], tmp_path))
    return _fingerprint(result)


@pytest.fixture(scope="module")
def per_token_pipe(tiny_diffusers):
    from pusa.pipeline import PusaPipeline

    return PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", modulation="per_token")


@pytest.fixture(scope="module")
def wan22_pipe(tiny_wan22):
    from pusa.pipeline import PusaPipeline

    return PusaPipeline.from_pretrained(tiny_wan22, device="cpu", modulation="per_token")


def _check(key: str, got: dict) -> None:
    table = json.loads(PINNED.read_text()) if PINNED.is_file() else {}
    if RECORD:
        table[key] = got
        PINNED.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
        return
    assert key in table, f"no pinned record for {key}; record with PUSA_RECORD_PINNED=1 before refactoring"
    want = table[key]
    assert got["experts"] == want["experts"]
    if got["cpu"] != want.get("cpu", RECORDED_ON):
        # another instruction set (AVX2 vs AVX-512) sums in another order: the last float bits move,
        # a changed computation moves far more than this
        np.testing.assert_allclose(got["latent_slice"], want["latent_slice"], rtol=1e-4, atol=1e-5)
        assert np.abs(np.subtract(got["frame_slice"], want["frame_slice"])).max() <= 1
        return
    assert got["latent_slice"] == want["latent_slice"]
    assert got["frame_slice"] == want["frame_slice"]
    assert got["latents_sha256"] == want["latents_sha256"], "latents differ somewhere outside the pinned slice"
    assert got["frames_sha256"] == want["frames_sha256"], "decoded frames differ somewhere outside the slice"


@pytest.mark.parametrize("name", list(CASES))
def test_every_task_output_is_pinned(name, per_token_pipe, tmp_path):
    _check(f"wan21/{name}", _run(per_token_pipe, name, tmp_path))


@pytest.mark.parametrize("name", ["t2v", "i2v"])
def test_wan22_output_is_pinned(name, wan22_pipe, tmp_path):
    _check(f"wan22/{name}", _run(wan22_pipe, name, tmp_path))
