"""`pusa train` under a 2-process launch (DDP over gloo on the CPU): the multi-GPU code path, minus GPUs.

It checks what a distributed run must get right and a single process never exercises: every rank
joins one process group (not two independent runs overwriting each other), each rank keeps its own
RNG state in the checkpoint, only the main process exports, and a resumed launch continues.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.training.conftest import CLIP_F, CLIP_H, CLIP_W


def _launch(model: Path, data: Path, output: Path, cache: Path, steps: int, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "pusa.training.cli", "train", "--model", str(model), "--data", str(data), "--output", str(output),
           "--cache-dir", str(cache), "--steps", str(steps), "--batch-size", "1", "--rank", "4", "--lr", "1e-3",
           "--size", f"{CLIP_W}x{CLIP_H}", "--frames", str(CLIP_F), "--checkpoint-every", "2", "--resume",
           "--no-progress", *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def test_two_process_launch_is_one_ddp_run_that_resumes(tiny_diffusers, shapes_data, tmp_path):
    from pusa.pipeline import PusaPipeline
    from pusa.settings import GenerationSettings
    from pusa.training.trainer import LORA_FILE, latest_checkpoint

    out, cache = tmp_path / "run", tmp_path / "cache"
    # Samples gather the weights with a collective call on every rank, then render on the main one.
    first = _launch(tiny_diffusers, shapes_data, out, cache, 2, "--sample-every", "2", "--sample-prompt", "a red circle")
    assert first.returncode == 0, first.stderr[-3000:]
    ckpt = latest_checkpoint(out)
    assert ckpt is not None and ckpt.name == "step-2"
    assert json.loads((ckpt / "trainer.json").read_text()) == {"step": 2, "processes": 2}
    assert (ckpt / "random_states_0.pkl").is_file() and (ckpt / "random_states_1.pkl").is_file()
    assert len(list((out / "samples" / "step-0000002").glob("sample-*.mp4"))) == 1
    # One process group: exactly one rank reports the export.
    assert first.stderr.count("done: step 2") == 1, first.stderr[-3000:]

    second = _launch(tiny_diffusers, shapes_data, out, cache, steps=4)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "at step 2" in second.stderr and second.stderr.count("done: step 4") == 1, second.stderr[-3000:]
    assert latest_checkpoint(out).name == "step-4"

    pipe = PusaPipeline.from_pretrained(tiny_diffusers, lora=out / LORA_FILE, device="cpu")
    s = GenerationSettings.parse({"prompt": "a red circle moving right fast", "task": "t2v", "steps": 2, "cfg": 1.0,
                                  "seed": 1, "width": CLIP_W, "height": CLIP_H, "frames": CLIP_F})
    assert pipe.generate(s).frames.shape == (CLIP_F, CLIP_H, CLIP_W, 3)
