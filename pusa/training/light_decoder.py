"""Train a narrower decoder for a model's latent space and measure what it costs in quality.

The engine can decode with any VAE folder whose encoder's latent space is the model's
(``--decoder DIR``, :mod:`pusa.light_decoder`); this builds one. The model's encoder stays frozen and
shared, so every latent (the DiT's, the conditions') means what it meant; the narrower decoder starts
from the first channels of the model's decoder and learns, as the bundled VAE's decoder did
(:func:`pusa.training.tiny.train_vae` with ``encoder=False``), to reconstruct the pictures from those
latents: single frames first (the i2v path, cheap as 2-D convolutions), then clips, whose causal
caches carry errors from chunk to chunk.

The training data are the project's procedural scenes (every background kind the bundled VAE was
trained on, at 64x64). That is the bundled model's world; for a real Wan VAE it is a narrow domain,
so measure the result on your own footage before relying on it.

Usage::

    python -m pusa.training.light_decoder --out runs/pusa-tiny-light            # bundled model, width 0.5
    pusa generate --decoder runs/pusa-tiny-light --prompt "a red ball"

The folder holds the VAE (``config.json``, ``diffusion_pytorch_model.safetensors``) and
``light_decoder.json``: the width, the steps and the PSNR per kind of the model's decoder and of the
light one on pictures and clips neither saw in training.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

# ``tiny.train_vae`` phases for a decoder alone, shorter than the bundled build's ``DECODER_PHASES``
# (the pruned start already holds the model decoder's first channels). Single frames do not train the
# temporal upsamplers (a first frame skips them), so the clip phases matter: with 200 + 100 clip
# steps a half-width pusa-tiny decoder reconstructed 33-frame clips at 20.1 dB, with 800 + 400 at
# 22.1 dB (the model's decoder: 23.6). About 11 minutes on one core of the project's CPU.
LIGHT_PHASES: tuple[dict, ...] = (
    dict(steps=3000, frames=1, crop=32, batch=8, lr=5e-4, encoder=False, seed_offset=60),
    dict(steps=800, frames=9, crop=48, batch=4, lr=1e-4, encoder=False, seed_offset=61),
    dict(steps=400, frames=33, crop=32, batch=2, lr=5e-5, encoder=False, seed_offset=62),
)
REPORT_FILE = "light_decoder.json"


def train_light_decoder(model_vae, width: float, *, seed: int = 0,
                        phase_steps: tuple[int, ...] | None = None):
    """A VAE with ``model_vae``'s encoder and latent statistics and a decoder of ``width`` times its
    channels, trained by :data:`LIGHT_PHASES` (``phase_steps`` overrides their step counts)."""
    from pusa.light_decoder import narrow_vae
    from pusa.training import tiny

    light = narrow_vae(model_vae, width)
    before = {k: v.clone() for k, v in light.encoder.state_dict().items()}
    tiny._run_phases(light, LIGHT_PHASES, seed, phase_steps, "light decoder")
    if not all(torch.equal(v, before[k]) for k, v in light.encoder.state_dict().items()):
        raise AssertionError("the encoder must stay the model's: it defines the latents the decoder reads")
    return light.eval()


@torch.no_grad()
def quality_report(model_vae, light, *, seed: int, pictures: int = 4, clips: int = 4) -> dict:
    """PSNR (dB) of the model's decoder and of ``light`` on held-out pictures per kind (64x64 and
    96x64) and on held-out 33-frame clips, both from the model's own encoder."""
    from pusa.latent_codec import LatentCodec
    from pusa.training import tiny
    from pusa.training.evaluate import psnr, vae_psnr_by_kind

    cpu = torch.device("cpu")
    full, narrow = LatentCodec(model_vae, cpu, fast_decode=True), LatentCodec(model_vae, cpu, fast_decode=True, decoder=light)
    sizes = ((64, 64), (96, 64))
    report = {"pictures": {"model": vae_psnr_by_kind(full, sizes, pictures, seed),
                           "light": vae_psnr_by_kind(narrow, sizes, pictures, seed)}}
    bank = tiny._clip_bank(np.random.default_rng(40_000_003 + seed), clips)
    scores: dict[str, list[float]] = {"model": [], "light": []}
    for clip in bank:
        px = torch.from_numpy(clip)[None]
        target = ((clip.transpose(1, 2, 3, 0) + 1.0) * 127.5).round().astype(np.uint8)
        z = full.encode(px)
        for name, codec in (("model", full), ("light", narrow)):
            scores[name].append(psnr(codec.decode(z), target))
    report["clips_33_frames"] = {k: round(float(np.mean(v)), 2) for k, v in scores.items()}
    return report


def save_light_decoder(light, out: Path, report: dict) -> None:
    """Write the VAE folder and its report; a killed run never leaves a folder that looks finished."""
    from pusa.training import tiny

    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tiny.save_vae(light, tmp)
    (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def main(argv: list[str] | None = None) -> int:
    from pusa.cli_options import resolve_model_dir
    from pusa.errors import PusaError
    from pusa.light_decoder import decoder_width
    from pusa.loading.components import load_vae
    from pusa.loading.layout import detect_layout

    p = argparse.ArgumentParser(prog="python -m pusa.training.light_decoder", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model folder (default: the bundled pusa-tiny)")
    p.add_argument("--out", required=True, help="folder to write the light decoder's VAE into")
    p.add_argument("--width", type=float, default=0.5, help="the decoder's channels as a share of the model's "
                                                            "(0 < width <= 1; default 0.5, about a quarter of the work)")
    p.add_argument("--steps", type=int, nargs="+", metavar="N", default=None,
                   help=f"steps of each training phase (default {' '.join(str(x['steps']) for x in LIGHT_PHASES)})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-pictures", type=int, default=4, help="held-out pictures per kind and clips to measure")
    a = p.parse_args(argv)
    if not 0 < a.width <= 1:
        p.error(f"--width: {a.width} is not allowed; expected a number in (0, 1], e.g. 0.5")
    if a.steps is not None and (len(a.steps) != len(LIGHT_PHASES) or min(a.steps) < 0):
        p.error(f"--steps: give {len(LIGHT_PHASES)} numbers >= 0 (one per phase), got {a.steps}")
    out = Path(a.out).expanduser()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        model_vae = load_vae(detect_layout(resolve_model_dir(a.model)).vae, torch.float32).eval()
    except PusaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    t0 = time.time()
    light = train_light_decoder(model_vae, a.width, seed=a.seed, phase_steps=tuple(a.steps) if a.steps else None)
    report = {"model": str(resolve_model_dir(a.model)), "width": a.width,
              "decoder_base_dim": {"model": decoder_width(model_vae), "light": decoder_width(light)},
              "steps": a.steps or [x["steps"] for x in LIGHT_PHASES], "seed": a.seed,
              "train_s": round(time.time() - t0, 1),
              **quality_report(model_vae, light, seed=a.seed, pictures=a.eval_pictures, clips=a.eval_pictures)}
    save_light_decoder(light, out, report)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
