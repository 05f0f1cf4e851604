"""Train a narrower decoder for a model's latent space and measure what it costs in quality.

The engine can decode with any VAE folder whose encoder's latent space is the model's
(``--decoder DIR``, :mod:`pusa.light_decoder`); this builds one. The model's encoder stays frozen and
shared, so every latent (the DiT's, the conditions') means what it meant; the narrower decoder starts
from the first channels of the model's decoder and learns, as the bundled VAE's decoder did
(:func:`pusa.training.tiny.train_vae` with ``encoder=False``), to reconstruct the pictures from those
latents: single frames first (the i2v path, cheap as 2-D convolutions), then clips, whose causal
caches carry errors from chunk to chunk.

The training data are the project's procedural scenes (every background kind the bundled VAE was
trained on, at 64x64), or with ``--videos DIR`` the first 33 frames of each video in a folder,
centre-cropped to squares (``--video-size``): the procedural scenes are the bundled model's world,
and for a real Wan VAE a narrow one, so train a real model's light decoder on footage like yours.
One video in ten (at least one) is held out and measured, never trained on.

Usage::

    python -m pusa.training.light_decoder --out runs/pusa-tiny-light            # bundled model, width 0.5
    pusa generate t2v --decoder runs/pusa-tiny-light --prompt "a red ball"
    python -m pusa.training.light_decoder --model /models/Wan2.1-T2V-14B --videos clips/ --device cuda \
        --out /models/wan21-light-decoder

The folder holds the VAE (``config.json``, ``diffusion_pytorch_model.safetensors``) and
``light_decoder.json``: the width, the steps and the PSNR per kind of the model's decoder and of the
light one on pictures and clips neither saw in training (and on the held-out videos).
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
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")
CLIP_FRAMES = 33  # the longest clip phase: the first frame and eight four-frame chunks
PICTURES = 4000  # single frames drawn from the videos for the single-frame phase (as many as the procedural bank)


def train_light_decoder(model_vae, width: float, *, seed: int = 0, phase_steps: tuple[int, ...] | None = None,
                        clips: np.ndarray | None = None):
    """A VAE with ``model_vae``'s encoder and latent statistics and a decoder of ``width`` times its
    channels, on ``model_vae``'s device, trained by :data:`LIGHT_PHASES` (``phase_steps`` overrides
    their step counts) on ``clips`` ((N, 3, 33, H, W) in [-1, 1], from :func:`video_bank`) or, without
    them, on the procedural scenes."""
    from pusa.light_decoder import narrow_vae
    from pusa.training import tiny

    light = narrow_vae(model_vae, width).to(next(model_vae.parameters()).device)
    before = {k: v.clone() for k, v in light.encoder.state_dict().items()}
    pictures = None if clips is None else _pictures_of(clips, np.random.default_rng(seed + 8))
    tiny._run_phases(light, LIGHT_PHASES, seed, phase_steps, "light decoder", bank=clips, pictures=pictures)
    if not all(torch.equal(v, before[k]) for k, v in light.encoder.state_dict().items()):
        raise AssertionError("the encoder must stay the model's: it defines the latents the decoder reads")
    return light.eval()


def _pictures_of(clips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Up to :data:`PICTURES` distinct single frames of ``clips``, laid out as a one-frame bank."""
    n, t = clips.shape[0], clips.shape[2]
    picks = rng.choice(n * t, size=min(PICTURES, n * t), replace=False)
    return np.stack([clips[i // t, :, i % t:i % t + 1] for i in sorted(picks)])


def video_bank(folder: str | Path, size: int, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The first 33 frames of each video in ``folder`` (sorted by name, the first ``limit`` usable ones), centre-cropped
    to ``size`` x ``size``: (training clips, held-out clips), one in ten held out (at least one).

    ``InputError`` names the field when the folder has no usable video or ``size`` is not a multiple of 16."""
    from pusa.errors import InputError
    from pusa.training.data import read_clip

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(f"videos: {root} is not a folder")
    if size < 32 or size % 16:
        raise InputError(f"video_size: {size} is not allowed; expected a multiple of 16, at least 32 (e.g. 128)")
    files = sorted(f for f in root.iterdir() if f.suffix.lower() in VIDEO_SUFFIXES and f.is_file())
    clips, skipped = [], []
    for f in files:
        if len(clips) == limit:
            break
        try:
            clips.append(read_clip(f, CLIP_FRAMES, size, size).numpy())
        except Exception as e:  # a short or unreadable file is skipped, and said
            skipped.append(f"{f.name} ({e})")
    if skipped:
        log.warning("skipped %d video(s): %s", len(skipped), "; ".join(skipped[:5]))
    if len(clips) < 2:
        raise InputError(f"videos: {root} has {len(clips)} usable video(s) of {CLIP_FRAMES}+ frames "
                         f"({', '.join(VIDEO_SUFFIXES)}); at least 2 are needed (one is held out)")
    held = max(1, len(clips) // 10)
    bank = np.stack(clips)
    return bank[:-held], bank[-held:]


@torch.no_grad()
def quality_report(model_vae, light, *, seed: int, pictures: int = 4, clips: int = 4,
                   held_out_videos: np.ndarray | None = None) -> dict:
    """PSNR (dB) of the model's decoder and of ``light`` on held-out pictures per kind (64x64 and
    96x64), on held-out 33-frame procedural clips and on ``held_out_videos``, all from the model's own
    encoder."""
    from pusa.latent_codec import LatentCodec
    from pusa.training import tiny
    from pusa.training.evaluate import vae_psnr_by_kind

    device = next(model_vae.parameters()).device
    full = LatentCodec(model_vae, device, fast_decode=True)
    narrow = LatentCodec(model_vae, device, fast_decode=True, decoder=light)
    sizes = ((64, 64), (96, 64))
    report = {"pictures": {"model": vae_psnr_by_kind(full, sizes, pictures, seed),
                           "light": vae_psnr_by_kind(narrow, sizes, pictures, seed)},
              "clips_33_frames": _clip_psnr(full, narrow, tiny._clip_bank(np.random.default_rng(40_000_003 + seed),
                                                                          clips))}
    if held_out_videos is not None:
        report["held_out_videos"] = {"count": len(held_out_videos), **_clip_psnr(full, narrow, held_out_videos)}
    return report


def _clip_psnr(full, narrow, bank: np.ndarray) -> dict:
    """Mean PSNR of each codec's decode of the model's latents of every clip in ``bank``."""
    from pusa.training.evaluate import psnr

    scores: dict[str, list[float]] = {"model": [], "light": []}
    for clip in bank:
        target = ((clip.transpose(1, 2, 3, 0) + 1.0) * 127.5).round().astype(np.uint8)
        z = full.encode(torch.from_numpy(np.ascontiguousarray(clip))[None])
        for name, codec in (("model", full), ("light", narrow)):
            scores[name].append(psnr(codec.decode(z), target))
    return {k: round(float(np.mean(v)), 2) for k, v in scores.items()}


def save_light_decoder(light, out: Path, report: dict) -> None:
    """Write the VAE folder and its report; a killed run never leaves a folder that looks finished."""
    from pusa.training import tiny

    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tiny.save_vae(light.cpu(), tmp)
    (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def _train(a: argparse.Namespace) -> int:
    """The command's work, run under :func:`pusa.cli_options.run_handler` (its exit codes and messages)."""
    from pusa.cli_options import resolve_model_dir
    from pusa.light_decoder import decoder_width
    from pusa.loading.components import load_vae
    from pusa.loading.devices import resolve_device
    from pusa.loading.layout import detect_layout

    device = resolve_device(a.device)
    train, held = video_bank(a.videos, a.video_size, a.max_videos) if a.videos else (None, None)
    model_vae = load_vae(detect_layout(resolve_model_dir(a.model)).vae, torch.float32).eval().to(device)
    t0 = time.time()
    light = train_light_decoder(model_vae, a.width, seed=a.seed, phase_steps=tuple(a.steps) if a.steps else None,
                                clips=train)
    report = {"model": str(resolve_model_dir(a.model)), "width": a.width,
              "decoder_base_dim": {"model": decoder_width(model_vae), "light": decoder_width(light)},
              "steps": a.steps or [x["steps"] for x in LIGHT_PHASES], "seed": a.seed,
              "data": f"{len(train)} videos at {a.video_size}x{a.video_size}" if train is not None else "procedural scenes",
              "device": str(device), "train_s": round(time.time() - t0, 1),
              **quality_report(model_vae, light, seed=a.seed, pictures=a.eval_pictures, clips=a.eval_pictures,
                               held_out_videos=held)}
    save_light_decoder(light, Path(a.out).expanduser(), report)
    print(json.dumps(report, indent=2))  # the command's result, as pusa eval prints its table
    return 0


def main(argv: list[str] | None = None) -> int:
    from pusa.cli_options import run_handler

    p = argparse.ArgumentParser(prog="python -m pusa.training.light_decoder", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model folder (default: the bundled pusa-tiny)")
    p.add_argument("--out", required=True, help="folder to write the light decoder's VAE into")
    p.add_argument("--width", type=float, default=0.5, help="the decoder's channels as a share of the model's "
                                                            "(0 < width <= 1; default 0.5, about a quarter of the work)")
    p.add_argument("--steps", type=int, nargs="+", metavar="N", default=None,
                   help=f"steps of each training phase (default {' '.join(str(x['steps']) for x in LIGHT_PHASES)})")
    p.add_argument("--videos", metavar="DIR", help="train on the first 33 frames of these videos instead of the "
                                                  "procedural scenes (one in ten held out for the report)")
    p.add_argument("--video-size", type=int, default=128, help="square crop the videos are resized to (default 128)")
    p.add_argument("--max-videos", type=int, default=300, help="at most this many videos (by name; default 300)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-pictures", type=int, default=4, help="held-out pictures per kind and clips to measure")
    p.add_argument("-v", "--verbose", action="store_true", help="show the traceback of an unexpected error")
    a = p.parse_args(argv)
    if not 0 < a.width <= 1:
        p.error(f"--width: {a.width} is not allowed; expected a number in (0, 1], e.g. 0.5")
    if a.steps is not None and (len(a.steps) != len(LIGHT_PHASES) or min(a.steps) < 0):
        p.error(f"--steps: give {len(LIGHT_PHASES)} numbers >= 0 (one per phase), got {a.steps}")
    if a.max_videos < 2:
        p.error(f"--max-videos: {a.max_videos} is not allowed; expected at least 2 (one is held out)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    a.handler = _train
    return run_handler(a)


if __name__ == "__main__":
    sys.exit(main())
