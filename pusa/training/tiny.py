"""The pusa-tiny architecture: a real Wan DiT, Wan VAE and UMT5, shrunk to train on a CPU.

Why these sizes: a default clip (64x64, 33 frames, 10 steps, cfg) must render in well under 15 s
on 2 CPU cores and all weights must fit in 25 MB, yet every component is the same class the 14B
model uses (diffusers ``WanTransformer3DModel`` / ``AutoencoderKLWan``, transformers
``UMT5EncoderModel``), so the engine, the loaders and the trainer run unchanged on it.

The VAE keeps Wan's shape (dim_mult [1,2,4,4], 2 res blocks, temporal downsampling
[False, True, True]: 4x time, 8x space, 16 latent channels); only its width is reduced, and the
build gives it Wan2.2's residual blocks (:data:`BUILD_VAE_CONFIG`). It is trained here as a plain autoencoder on synthetic frames
(:func:`build_vae`), because a random decoder would make every generated video noise.
The text encoder is a randomly initialised, frozen 2-layer UMT5 over a word-level tokenizer of
the caption vocabulary: the DiT learns to read its features, the way Wan learns to read a frozen
T5's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from pusa.training.scenes import CAMERA_WORDS, vae_clip
from pusa.training.vae_fit import decode_unclamped, first_frames_as_2d
from pusa.training.synthetic import CAPTION_WORDS

log = logging.getLogger(__name__)

WIDTH, HEIGHT, FRAMES = 64, 64, 33
TEXT_LEN = 32
DIT_CONFIG = dict(patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=32, in_channels=16,
                  out_channels=16, text_dim=64, freq_dim=64, ffn_dim=512, num_layers=4, cross_attn_norm=True,
                  qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
T5_CONFIG = dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=0, num_heads=4,
                 relative_attention_num_buckets=32, relative_attention_max_distance=128,
                 feed_forward_proj="gated-gelu", dropout_rate=0.0, tie_word_embeddings=False,
                 pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
VAE_BASE_DIM = 8

# Words outside the caption grammar that users commonly type; they get real ids instead of <unk>.
EXTRA_WORDS = ["the", "an", "ball", "box", "object", "shape", "slowly", "quickly", "bouncing", "moves", "on",
               "black", "background", "towards", "to", "of", ",", "."]


def umt5_style_tokenizer(model, pre_tokenizer, max_length: int, normalizer=None, decoder=None):
    """A fast tokenizer with UMT5's special ids (pad 0, eos 1, unk 2) and an appended ``</s>``."""
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(model)
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    if decoder is not None:
        tok.decoder = decoder
    tok.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=max_length)


def make_tokenizer():
    """Word-level tokenizer over the caption vocabulary, saved as tokenizer.json.

    Words added later (the scene clips' camera phrase) come last, so every earlier word keeps its id
    and :func:`make_text_encoder` keeps its features.
    """
    from tokenizers import models, normalizers, pre_tokenizers

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for w in list(dict.fromkeys(CAPTION_WORDS + EXTRA_WORDS + CAMERA_WORDS)):
        vocab.setdefault(w, len(vocab))
    return umt5_style_tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"), pre_tokenizers.Whitespace(),
                                TEXT_LEN, normalizer=normalizers.Lowercase())


# Vocabulary size of the first pusa-tiny tokenizer (caption words + EXTRA_WORDS, 3 specials).
FIRST_VOCAB = 44


def make_text_encoder(vocab_size: int, seed: int, config: dict | None = None):
    """A random UMT5 encoder (frozen everywhere: only its features' identity matters).

    The encoder is drawn for the first vocabulary (:data:`FIRST_VOCAB`) and later words get extra
    embedding rows from their own generator, so adding words never changes the features of the
    words a DiT was already trained to read (a build may start from an earlier pusa-tiny).
    """
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    base = min(vocab_size, FIRST_VOCAB) if config is None else vocab_size
    model = UMT5EncoderModel(UMT5Config(vocab_size=base, **(config or T5_CONFIG)))
    if vocab_size > base:
        old = model.get_input_embeddings().weight.data
        gen = torch.Generator().manual_seed(seed + 1)
        extra = torch.randn(vocab_size - base, old.shape[1], generator=gen) * old.std()
        model.resize_token_embeddings(vocab_size, mean_resizing=False)
        model.get_input_embeddings().weight.data[base:] = extra
    return model.eval()


def make_transformer(seed: int, config: dict | None = None):
    """A freshly initialised Wan DiT of ``config`` (default: pusa-tiny's), diffusers' own init."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    return WanTransformer3DModel(**(config or DIT_CONFIG))


# The pusa-tiny build's VAE has residual blocks (``is_residual``, as in Wan2.2's VAE: every down/up
# block also passes a space-to-channel average of its input): at base_dim 8 the plain Wan2.1 blocks
# must squeeze every pixel through an RMS-normalised 8-channel vector and learn many times slower
# (docs/training.md). The latent space keeps Wan's shape: 16 channels, 4x time, 8x space.
BUILD_VAE_CONFIG = dict(is_residual=True)


def make_vae(seed: int, base_dim: int = VAE_BASE_DIM, **config):
    """A freshly initialised narrow Wan VAE with Wan2.1's block structure (``config`` overrides, e.g.
    z_dim, or :data:`BUILD_VAE_CONFIG` for the pusa-tiny build's). The test layouts use the plain
    blocks: the original-layout converters and the pinned outputs are Wan2.1's."""
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    return AutoencoderKLWan(**{**dict(base_dim=base_dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                      attn_scales=[], temperal_downsample=[False, True, True]), **config})


def _clip_bank(rng: np.random.Generator, n: int, frames: int = FRAMES) -> np.ndarray:
    """``n`` varied clips (``scenes.vae_clip``) as float32 (n, 3, T, H, W) in [-1, 1] for autoencoder training."""
    clips = [vae_clip(rng, WIDTH, HEIGHT, frames) for _ in range(n)]
    arr = np.stack(clips).astype(np.float32) / 127.5 - 1.0
    return arr.transpose(0, 4, 1, 2, 3).copy()


def train_vae(vae, *, seed: int, steps: int, batch: int = 8, frames: int = 5, crop: int = 32, lr: float = 2e-4,
              posterior: str = "mode", kl_weight: float = 1e-7, latent_noise: float = 0.05, fg_weight: float = 0.0,
              encoder: bool = True, bank_size: int = 300, bank: np.ndarray | None = None,
              pictures: np.ndarray | None = None, teacher=None, teacher_bank: np.ndarray | None = None,
              distill_weight: float = 2.0) -> list[float]:
    """Train the VAE as an autoencoder on random crops of varied synthetic clips; returns the loss curve.

    Crops of ``crop`` px and ``frames`` frames (1 + 4k, so the causal first-frame path and the
    4-frame chunks are both trained) keep a step at about 0.4 s on 2 cores; convolutions do not
    care about the crop size, so the result works on full frames.

    ``posterior="sample"`` trains on KL-regularised noisy latents; ``posterior="mode"`` on the
    encoder's mean (what the engine uses) plus a little noise (``latent_noise`` x the latents'
    std), so the decoder tolerates slightly wrong DiT latents. ``fg_weight`` adds weight to the
    pixels of non-black areas (only useful on all-black data, where objects are 5% of a frame).
    ``encoder=False`` freezes the encoder (and so the latent space a DiT was trained on) and trains
    the decoder alone (:data:`DECODER_PHASES`). ``bank`` (from :func:`_clip_bank`) is shared by the
    phases of a build: rendering the clips costs minutes on a busy CPU; without it each call renders
    its own. ``pictures`` (single frames, ``_clip_bank(..., frames=1)``) serve the single-frame
    phases instead: thousands of distinct pictures cost what a few hundred clips do, and a VAE that
    must reconstruct any picture needs many more pictures than clips. The learning rate warms up,
    then follows a cosine to 5%.

    ``teacher`` (a VAE a DiT was trained on) keeps that DiT's latent space: every step adds half a
    batch of ``teacher_bank`` clips (shapes on black, the DiT's world, from :func:`_black_bank`),
    and on those the encoder's mean must equal the teacher's, in the teacher's normalised units
    (``distill_weight`` x mean squared difference). Elsewhere the encoder is free to keep what the
    teacher loses (:func:`build_vae`). With ``encoder=False`` the decoder draws those clips from
    the teacher's own latents instead: the new encoder matches them only to about 0.1 (first
    frame) to 0.25 (later frames) of their std, and the DiT generates the teacher's latents (it
    brought the bundled LoRA's keyframe path from 5.9 to 4.0 px; docs/training.md).

    Single frames train through :func:`pusa.training.vae_fit.first_frames_as_2d` (exact, 2.5x
    faster) and every loss is taken before diffusers' output clamp
    (:func:`pusa.training.vae_fit.decode_unclamped`).
    """
    if steps <= 0:
        return []
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    if frames == 1 and pictures is not None:
        bank = pictures
    if bank is None:
        bank = _clip_bank(rng, min(bank_size, steps * batch), frames=FRAMES if frames > 1 else 1)
    params = list(vae.parameters()) if encoder else [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warmup = min(100, steps // 10 + 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0)))))
    vae.train()
    losses = []
    t0 = time.time()
    distill = None if teacher is None else _Distillation(teacher, teacher_bank, distill_weight, max(1, batch // 2))
    with first_frames_as_2d(vae), (first_frames_as_2d(teacher) if teacher is not None else contextlib.nullcontext()):
        for step in range(steps):
            losses.append(_vae_step(vae, bank, rng, opt, params, batch=batch, frames=frames, crop=crop,
                                    posterior=posterior, kl_weight=kl_weight, latent_noise=latent_noise,
                                    fg_weight=fg_weight, encoder=encoder, distill=distill))
            sched.step()
            if step % 50 == 0 or step == steps - 1:
                log.info("vae step %d/%d loss %.4f (%.0f s)", step + 1, steps, np.mean(losses[-50:]),
                         time.time() - t0)
    vae.eval()
    return losses


class _Distillation:
    """The teacher side of :func:`train_vae`: its clips, its frozen encoder and its latent units."""

    def __init__(self, teacher, bank: np.ndarray | None, weight: float, batch: int):
        if bank is None:
            raise ValueError("teacher_bank: a teacher needs the clips of its DiT's world (tiny._black_bank)")
        self.teacher, self.bank, self.weight, self.batch = teacher.eval().requires_grad_(False), bank, weight, batch
        self.std = torch.tensor(teacher.config.latents_std, dtype=torch.float32).view(1, -1, 1, 1, 1)

    @torch.no_grad()
    def latents(self, xb: torch.Tensor) -> torch.Tensor:
        """The teacher's latent means of ``xb``: what its DiT was trained on, and so what it generates."""
        return self.teacher.encode(xb).latent_dist.mode()

    def loss(self, mean: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
        """``weight`` x the mean squared difference from the teacher's latent mean, in its normalised units."""
        return self.weight * ((mean - self.latents(xb)) / self.std).pow(2).mean()


def _crops(bank: np.ndarray, rng: np.random.Generator, n: int, frames: int, crop: int) -> torch.Tensor:
    """``n`` random crops of ``frames`` frames and ``crop`` px from a (N, 3, T, H, W) bank."""
    idx = rng.integers(0, len(bank), size=n)
    t = rng.integers(0, bank.shape[2] - frames + 1, size=n)
    y = rng.integers(0, bank.shape[3] - crop + 1, size=n)
    x = rng.integers(0, bank.shape[4] - crop + 1, size=n)
    return torch.from_numpy(np.stack([bank[i, :, a:a + frames, b:b + crop, c:c + crop]
                                      for i, a, b, c in zip(idx, t, y, x)]))


def _vae_step(vae, bank: np.ndarray, rng: np.random.Generator, opt, params, *, batch: int, frames: int, crop: int,
              posterior: str, kl_weight: float, latent_noise: float, fg_weight: float, encoder: bool,
              distill: _Distillation | None = None) -> float:
    """One optimiser step of :func:`train_vae` on a random batch of crops from ``bank`` (plus the
    teacher's clips when distilling); returns the loss."""
    xb = _crops(bank, rng, batch, frames, crop)
    if distill is not None:
        xb = torch.cat([xb, _crops(distill.bank, rng, distill.batch, frames, crop)])
    xb = xb.to(next(vae.parameters()).device)  # the banks stay in host memory; the VAE may be on a GPU
    with torch.set_grad_enabled(encoder):
        post = vae.encode(xb).latent_dist
    if posterior == "sample":
        z = post.sample()
    else:
        z = post.mode()
        if distill is not None and not encoder:  # the decoder learns to draw the teacher's latents
            z = torch.cat([z[:batch], distill.latents(xb[batch:])])
        if latent_noise > 0:
            z = z + latent_noise * z.detach().std() * torch.randn_like(z)
    rec = decode_unclamped(vae, z)
    err = rec - xb
    weight = 1.0 + fg_weight * (xb > -0.9).any(dim=1, keepdim=True).float()
    loss = (weight * (err.abs() + 2.0 * err.pow(2))).mean()
    if posterior == "sample" and encoder:
        loss = loss + kl_weight * post.kl().mean()
    if distill is not None and encoder:
        loss = loss + distill.loss(post.mode()[batch:], xb[batch:])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    return float(loss.detach())


# The VAE's training phases (keyword arguments of :func:`train_vae`; ``seed_offset`` is added to the
# build seed). The data are ``scenes.vae_clip``: backgrounds of every training kind, objects of any
# colour, thin strokes and camera pans, plus a fifth of shapes on black. Why each phase:
# 1. single full frames on the posterior mean (plus 5% latent noise): colours, textures and shapes,
#    cheaply (a first frame trains as 2-D convolutions, ``vae_fit``), drawn from thousands of
#    distinct pictures; the longest phase because every i2v input goes through this path. At 5e-4
#    with Wan2.2's residual blocks (``BUILD_VAE_CONFIG``): the plain Wan2.1 blocks of this width stay on the
#    mean-colour plateau at that rate and crawl at 2e-4 (docs/training.md);
# 2.-4. 9-, 17-, then 33-frame clips (the first frame + 2, 4, 8 four-frame chunks): the causal
#    caches carry errors from chunk to chunk, and a VAE trained on shorter clips than it decodes
#    drifts (colour and shape) after the last trained chunk. With a teacher (``build_vae``) these
#    phases also match its latents of whole clips, the DiT's frames 1-8, so they are longer.
# After these the encoder is frozen: the latent statistics are measured and the DiT stages train on
# its latents, while :data:`DECODER_PHASES` go on sharpening the decoder (the same two kinds of
# data), which changes no latent the DiT reads, so the two can run side by side.
VAE_PHASES: tuple[dict, ...] = (
    dict(steps=6000, frames=1, crop=64, batch=8, lr=5e-4, seed_offset=40),
    dict(steps=600, frames=9, crop=48, batch=4, lr=1e-4, seed_offset=41),
    dict(steps=400, frames=17, crop=32, batch=4, lr=1e-4, seed_offset=42),
    dict(steps=200, frames=33, crop=32, batch=2, lr=5e-5, seed_offset=43),
)
DECODER_PHASES: tuple[dict, ...] = (
    # 32 px crops: a step costs a quarter of a full frame's and, per second, the decoder learns
    # faster (docs/training.md); the DiT stages run beside it, so this may take as long as they do
    dict(steps=10000, frames=1, crop=32, batch=8, lr=2e-4, encoder=False, teacher=False, seed_offset=50),
    dict(steps=300, frames=9, crop=48, batch=4, lr=5e-5, encoder=False, teacher=False, seed_offset=51),
    dict(steps=200, frames=33, crop=32, batch=2, lr=3e-5, encoder=False, teacher=False, seed_offset=52),
    # with a teacher (``sharpen_decoder``): whole clips, shapes on black drawn from its latents
    dict(steps=400, frames=33, crop=32, batch=4, lr=5e-5, encoder=False, teacher=True, seed_offset=53),
)
VAE_BANK_CLIPS = 300  # varied clips rendered once per stage for the clip phases (300 x 33 frames: 0.5 GB)
VAE_BANK_PICTURES = 4000  # distinct single pictures for the single-frame phases (0.2 GB)


def _black_bank(rng: np.random.Generator, n: int, frames: int = FRAMES) -> np.ndarray:
    """``n`` shapes-on-black clips (``synthetic.random_clip``, the T2V base's world) as :func:`_clip_bank` lays them out."""
    from pusa.training.synthetic import random_clip

    arr = np.stack([random_clip(rng, WIDTH, HEIGHT, frames).frames for _ in range(n)]).astype(np.float32) / 127.5 - 1.0
    return arr.transpose(0, 4, 1, 2, 3).copy()


def _run_phases(vae, phases: tuple[dict, ...], seed: int, phase_steps: tuple[int, ...] | None, what: str,
                teacher=None, teacher_bank: np.ndarray | None = None, bank: np.ndarray | None = None,
                pictures: np.ndarray | None = None) -> None:
    """Every phase in order; the teacher (with its clips) joins the phases whose ``teacher`` key is not False.
    ``bank`` (clips) and ``pictures`` (single frames), laid out as :func:`_clip_bank` does, replace
    the procedural ones (a light decoder trained on a user's own videos)."""
    if phase_steps is not None and len(phase_steps) != len(phases):
        raise ValueError(f"phase_steps: expected {len(phases)} numbers, got {len(phase_steps)}")
    steps = phase_steps if phase_steps is not None else tuple(p["steps"] for p in phases)
    samples = {single: sum(n * p["batch"] for n, p in zip(steps, phases) if (p["frames"] == 1) == single)
               for single in (True, False)}  # a short run renders no more than it can sample
    if bank is None:
        bank = _clip_bank(np.random.default_rng(seed + 7), max(1, min(VAE_BANK_CLIPS, samples[False])))
    if pictures is None:
        pictures = _clip_bank(np.random.default_rng(seed + 8), max(1, min(VAE_BANK_PICTURES, samples[True])),
                              frames=1)
    for i, phase in enumerate(phases):
        kwargs = {k: v for k, v in phase.items() if k not in ("seed_offset", "teacher")}
        kwargs["steps"] = steps[i]
        with_teacher = teacher is not None and phase.get("teacher", True)
        log.info("%s phase %d/%d%s: %s", what, i + 1, len(phases), " (with the teacher)" if with_teacher else "",
                 kwargs)
        if with_teacher:
            kwargs.update(teacher=teacher, teacher_bank=teacher_bank)
        train_vae(vae, seed=seed + phase["seed_offset"], bank=bank, pictures=pictures, **kwargs)


def build_vae(seed: int, phase_steps: tuple[int, ...] | None = None, teacher=None):
    """The pusa-tiny VAE before its decoder phases: every phase of :data:`VAE_PHASES`, then the latent statistics.

    ``phase_steps`` overrides the number of steps of each phase (same length as ``VAE_PHASES``).

    ``teacher`` (the VAE a DiT was trained on) makes the new VAE's latents of shapes on black the
    teacher's (:func:`train_vae`) and gives it the teacher's latent statistics. Why: the DiT then
    keeps everything it learned (its motion, its LoRA's keyframe paths) with a VAE that also
    encodes and decodes backgrounds the teacher never saw; retraining a DiT on a new latent space
    lost that motion (docs/training.md, candidates A-E). The architectures may differ (the
    teacher has Wan2.1's plain blocks, the new VAE :data:`BUILD_VAE_CONFIG`'s residual ones): only
    the latents must agree.
    """
    vae = make_vae(seed, **BUILD_VAE_CONFIG)
    if teacher is None:
        _run_phases(vae, VAE_PHASES, seed, phase_steps, "vae")
        set_latent_stats(vae, seed=seed + 1)
        return vae
    black = _black_bank(np.random.default_rng(seed + 9), VAE_BANK_CLIPS)
    _run_phases(vae, VAE_PHASES, seed, phase_steps, "vae", teacher=teacher, teacher_bank=black)
    vae.register_to_config(latents_mean=list(teacher.config.latents_mean), latents_std=list(teacher.config.latents_std))
    return vae


def sharpen_decoder(vae, seed: int, phase_steps: tuple[int, ...] | None = None, teacher=None):
    """:data:`DECODER_PHASES` on ``vae``: the encoder, its latent statistics and so every latent stay as they are.

    With ``teacher`` (the VAE of :func:`build_vae`) its last phase also draws shapes on black from
    the teacher's latents (:func:`train_vae`).
    """
    before = {k: v.clone() for k, v in vae.encoder.state_dict().items()}
    black = None if teacher is None else _black_bank(np.random.default_rng(seed + 10), VAE_BANK_CLIPS)
    _run_phases(vae, DECODER_PHASES, seed, phase_steps, "decoder", teacher=teacher, teacher_bank=black)
    assert all(torch.equal(v, before[k]) for k, v in vae.encoder.state_dict().items()), "the encoder must stay frozen"
    return vae


@torch.no_grad()
def set_latent_stats(vae, *, seed: int, n: int = 24) -> None:
    """Store per-channel latent mean/std (from synthetic clips) in the VAE config, as Wan's VAE does."""
    bank = torch.from_numpy(_clip_bank(np.random.default_rng(seed), n))
    zs = torch.cat([vae.encode(bank[i:i + 4]).latent_dist.mode() for i in range(0, n, 4)])
    mean = zs.mean(dim=(0, 2, 3, 4))
    std = zs.std(dim=(0, 2, 3, 4)).clamp_min(1e-3)
    vae.register_to_config(latents_mean=[round(float(v), 5) for v in mean],
                           latents_std=[round(float(v), 5) for v in std])


@torch.no_grad()
def vae_psnr(vae, *, seed: int, n: int = 4) -> float:
    """Reconstruction PSNR (dB) of full-size synthetic clips, to report the autoencoder's quality."""
    bank = torch.from_numpy(_clip_bank(np.random.default_rng(seed), n))
    rec = vae.decode(vae.encode(bank).latent_dist.mode()).sample.clamp(-1, 1)
    mse = ((rec - bank) / 2).pow(2).mean()
    return float(10 * torch.log10(1.0 / mse))


def write_model_index(root: Path) -> None:
    """diffusers' model_index.json, so the folder is a standard Wan diffusers layout."""
    import diffusers

    index = {
        "_class_name": "WanPipeline",
        "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLWan"],
    }
    (root / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    from diffusers import FlowMatchEulerDiscreteScheduler

    FlowMatchEulerDiscreteScheduler(shift=5.0).save_pretrained(str(root / "scheduler"))


def write_pusa_json(root: Path, label: str, lora: str | None = None) -> None:
    """Model defaults read by the engine (size, frames, prompt length, default LoRA, label)."""
    meta = {"width": WIDTH, "height": HEIGHT, "frames": FRAMES, "text_len": TEXT_LEN, "label": label,
            "fast_decode": True}  # its narrow VAE decodes far faster on oneDNN (pusa.latent_codec)
    if lora:
        meta["lora"] = lora
    (root / "pusa.json").write_text(json.dumps(meta, indent=2) + "\n")


def write_base_model(root: str | Path, vae, *, seed: int, transformer=None, label: str = "pusa-tiny (base)",
                     lora: str | None = None) -> Path:
    """Write a complete diffusers-layout model folder from a VAE (and optionally a trained DiT).

    Tokenizer and text encoder are recreated from ``seed`` (they are never trained), so the same
    seed always yields the same text features the DiT was trained on.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer()
    tokenizer.save_pretrained(str(root / "tokenizer"))
    make_text_encoder(len(tokenizer), seed).save_pretrained(str(root / "text_encoder"), safe_serialization=True)
    (transformer if transformer is not None else make_transformer(seed)).save_pretrained(
        str(root / "transformer"), safe_serialization=True)
    _drop_load_path(root / "transformer")
    save_vae(vae, root / "vae")
    write_model_index(root)
    write_pusa_json(root, label, lora)
    return root


def save_vae(vae, folder: str | Path) -> None:
    """Save a VAE as safetensors, without the build machine's path in its config."""
    vae.save_pretrained(str(folder), safe_serialization=True)
    _drop_load_path(Path(folder))


def _drop_load_path(folder: Path) -> None:
    """diffusers records the folder a model was loaded from (``_name_or_path``): a build-machine path."""
    config = folder / "config.json"
    data = json.loads(config.read_text())
    if data.pop("_name_or_path", None) is not None:
        config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
