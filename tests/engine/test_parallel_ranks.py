"""Two ranks over gloo on CPU give the single-process video: Ulysses 2, CFG-parallel 2, Wan2.2's two
experts, chained long-video windows, per-frame modulation with frames the ranks do not divide.

One ``torchrun`` launch runs every case (process start-up dominates on CPU): this file is also the
rank's script. Each rank loads every tiny model twice, once attached to a rank group and once
alone, generates with both, and rank 0 writes the differences for the test to check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# (name, model fixture, degrees, settings): 9 frames = 3 latent frames, not divisible by 2 ranks.
CASES = [
    ("ulysses2", "wan21", {"ulysses": 2}, {"task": "t2v", "frames": 9, "cfg": 5.0}),
    ("cfg2", "wan21", {"cfg": 2}, {"task": "t2v", "frames": 9, "cfg": 5.0}),
    ("wan22_ulysses2", "wan22", {"ulysses": 2}, {"task": "t2v", "frames": 9, "cfg": 4.0, "steps": 3}),
    ("long_ulysses2", "wan21", {"ulysses": 2}, {"task": "t2v", "frames": 17, "cfg": 3.0}),
    ("i2v_ulysses2", "wan21", {"ulysses": 2}, {"task": "i2v", "frames": 9, "cfg": 2.0}),
    ("i2v_per_token_ulysses2", "wan21", {"ulysses": 2}, {"task": "i2v", "frames": 9, "cfg": 2.0}),
]
LATENT_TOL = 1e-4


def rank_main(out: Path, models: dict[str, str]) -> None:
    """One rank: every case, parallel vs alone; rank 0 records the largest differences."""
    import numpy as np
    import torch
    import torch.distributed as dist
    from PIL import Image

    from pusa.long_video import generate_video
    from pusa.parallel.degrees import Degrees
    from pusa.parallel.runtime import RankGroup
    from pusa.pipeline import PusaPipeline
    from pusa.settings import GenerationSettings

    image = Image.fromarray((np.arange(64 * 64 * 3) % 251).astype(np.uint8).reshape(64, 64, 3))
    report: dict[str, dict] = {}
    group = None
    for name, model, degrees, extra in CASES:
        group = RankGroup.start(Degrees(**degrees), "cpu", timeout_s=120, watch_parent=False)
        modulation = "per_token" if "per_token" in name else "per_frame"
        alone = PusaPipeline.from_pretrained(models[model], device="cpu", modulation=modulation)
        pipe = PusaPipeline.from_pretrained(models[model], **group.load_kwargs({"device": "cpu",
                                                                                "modulation": modulation}))
        group.attach(pipe)
        tokens: list[int] = []  # what the second block sees: the tokens of this rank only
        pipe.transformers[0].blocks[1].register_forward_pre_hook(lambda m, args: tokens.append(args[0].shape[1]))
        s = GenerationSettings.parse({"prompt": "a red ball", "steps": 2, "seed": 5, **extra})
        images = [image] if extra["task"] == "i2v" else None
        if name.startswith("long"):
            a, b = generate_video(alone, s), generate_video(pipe, s)
        else:
            a, b = (p.generate(s, images=images, return_latents=True) for p in (alone, pipe))
        mine = b.latents.float().contiguous()
        every = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
        dist.all_gather(every, mine)  # the latents must be the same on every rank
        # What rank 1 did: did it load a text encoder, how many frames did it decode (none: rank 0 decodes)?
        theirs = torch.tensor([int(pipe.text_encoder is not None), -1 if b.frames is None else len(b.frames)])
        if group.is_main:
            dist.recv(theirs, src=1)
            fa, fb = a.all_frames().astype(int), b.all_frames().astype(int)
            report[name] = {"latents": float((a.latents - b.latents).abs().max()),
                            "ranks": max(float((every[0] - e).abs().max()) for e in every),
                            "frames": int(np.abs(fa - fb).max()) if fa.shape == fb.shape else -1,
                            "experts": [a.experts, b.experts], "text_encoder": pipe.text_encoder is not None,
                            "tokens": [alone.family.tokens_per_frame(*a.latents.shape[3:]) * a.latents.shape[2],
                                       sorted(set(tokens))],
                            "other_rank": {"text_encoder": bool(theirs[0]), "decoded_frames": int(theirs[1])}}
        else:
            dist.send(theirs, dst=0)
    if group.is_main:
        out.write_text(json.dumps(report, indent=1))
    group.close()


def test_two_ranks_equal_one_process(tiny_diffusers, tiny_wan22, tmp_path):
    from pusa.parallel.launch import LOOPBACK, free_loopback_port, rank_environment

    out = tmp_path / "report.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
               "--master-addr", LOOPBACK, "--master-port", str(free_loopback_port()),
               __file__, str(out), str(tiny_diffusers), str(tiny_wan22)]  # this file is the ranks' script
    done = subprocess.run(command, env=rank_environment(2), capture_output=True, text=True, timeout=850)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(out.read_text())
    assert set(report) == {c[0] for c in CASES}
    for name, r in report.items():
        per_rank = r["tokens"][0] // (2 if "ulysses" in name else 1)
        if name.startswith("long"):
            per_rank = 16 * 3 // 2  # a window: 3 latent frames of 16 tokens
        assert r["tokens"][1] == [per_rank], (name, r)  # the sequence really is split (or not, for CFG)
        assert r["latents"] <= LATENT_TOL, (name, r)
        assert r["ranks"] == 0.0, (name, r)  # every rank continues with the same latents
        assert 0 <= r["frames"] <= 1, (name, r)
        assert r["experts"][0] == r["experts"][1], (name, r)
        assert r["text_encoder"] and not r["other_rank"]["text_encoder"], (name, r)  # rank 0 alone encodes text
        assert r["other_rank"]["decoded_frames"] in (0, -1), (name, r)  # and alone decodes
    assert set(report["wan22_ulysses2"]["experts"][1]) == {"high", "low"}  # both experts ran, split over ranks
    assert report["cfg2"]["latents"] == 0.0  # CFG-parallel is the same arithmetic: bit-exact on CPU


if __name__ == "__main__":
    rank_main(Path(sys.argv[1]), {"wan21": sys.argv[2], "wan22": sys.argv[3]})
