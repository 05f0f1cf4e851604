"""The engine: check inputs, encode text, encode conditions, denoise, decode — for every task.

Reading order follows diffusers' pipelines, and each step is a public method so other callers can
compose them differently (a long-video planner chains ``prepare``/``denoise`` over windows and hands
latents on as anchors; a parallel runner wraps the velocity model):

    prepare   settings + inputs -> text context, condition latents and per-frame multipliers
    denoise   noise + conditions + velocity model -> clean latents (the one sampler loop)
    decode    latents -> uint8 frames, one latent frame at a time (progress and cancel per frame)

``generate`` composes them. The CLI, the web studio, the HTTP API, ``pusa eval`` and the trainer's
sample videos all call ``PusaPipeline.generate``; no edge has its own copy of any step.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from pusa.conditions import Anchor, Conditions, place_conditions
from pusa.errors import InputError, ModelLoadError
from pusa.family import WAN21, ModelDefaults, ModelFamily, family_from_configs
from pusa.latent_codec import LatentCodec
from pusa.light_decoder import decoder_width, load_decoder
from pusa.loading.components import load_text_encoder, load_tokenizer, load_transformer, load_vae
from pusa.loading.devices import check_offload, place, resolve_device, resolve_dtype
from pusa.loading.layout import ModelLayout, detect_layout
from pusa.loading.lora import LoraWeights, MergedLoras, load_lora, lora_files_per_expert
from pusa.media import iter_images, read_video_frames
from pusa.sampler import sample
from pusa.schedule import inference_sigmas
from pusa.result import GenerationResult, LoadProgress, ProgressCallback, StepInfo  # noqa: F401 (re-exported)
from pusa.settings import GenerationSettings
from pusa.speed.magcache import load_ratios
from pusa.speed.options import SpeedOptions
from pusa.speed.restore import checkpoint_source
from pusa.tasks import get_task
from pusa.text import encode_prompts
from pusa.velocity import WanVelocity

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """What ``prepare`` hands to ``denoise``: the resolved request, its text context and conditions."""

    settings: GenerationSettings
    shape: tuple[int, int, int, int, int]
    context: torch.Tensor
    negative: torch.Tensor | None
    conditions: Conditions


def latent_shape(settings: GenerationSettings, family: ModelFamily = WAN21) -> tuple[int, int, int, int, int]:
    """Latent shape of a resolved request for ``family``."""
    return family.latent_shape(settings.width, settings.height, settings.frames)


def seeded_noise(shape: Sequence[int], seed: int) -> torch.Tensor:
    """Wan's convention: float32 ``randn`` from a CPU generator, so a seed means one video on any device."""
    return torch.randn(tuple(shape), generator=torch.Generator("cpu").manual_seed(int(seed)), dtype=torch.float32)


def _silent(info: StepInfo) -> None:
    return None


class PusaPipeline:
    """One loaded model (Wan2.1 or Wan2.2) with its LoRAs, ready to generate any task."""

    speed: SpeedOptions = SpeedOptions()
    extra_lora_loaded = False  # an --extra-lora for every expert (what a distillation preset needs)
    decoder_name = ""  # the --decoder's folder or file name (a seed gives other pixels through it)

    def __init__(self, layout: ModelLayout, transformers: list[torch.nn.Module], vae: torch.nn.Module,
                 text_encoder: torch.nn.Module, tokenizer: Any, device: torch.device, dtype: torch.dtype,
                 loras: list[MergedLoras | None], lora_paths: list[str], text_device: torch.device | None = None,
                 family: ModelFamily | None = None, max_pixel_frames: int | None = None,
                 decoder: torch.nn.Module | None = None):
        self.layout = layout
        self.family = family or layout.family
        self.transformers = transformers
        self.vae = vae
        self.codec = LatentCodec(vae, device, fast_decode=layout.fast_decode, decoder=decoder)
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = dtype
        self.loras = loras
        self.lora_paths = lora_paths
        self.text_device = text_device or device
        self.max_pixel_frames = max_pixel_frames
        self._preview: Any = None  # pusa.preview.LatentPreview, fitted on first use
        self.parallel: Any = None  # a pusa.parallel RankGroup when this is one rank of several (attach())

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, *, lora: str | Path | None = None,
                        lora_low: str | Path | None = None, extra_lora: str | Path | None = None,
                        extra_lora_low: str | Path | None = None, use_default_lora: bool = True,
                        device: str = "auto", dtype: str = "auto", vae_dtype: str = "fp32", offload: str = "none",
                        vae_tiling: bool = False, decoder: str | Path | None = None,
                        text_encoder_on_cpu: bool = False, max_pixel_frames: int | None = None, modulation: str = "per_frame",
                        weights: str = "bf16", cache: str = "none", cache_threshold: float | None = None,
                        attention: str = "auto", compile: bool = False, preset: str = "none",
                        with_text_encoder: bool = True,
                        on_progress: LoadProgress | None = None) -> "PusaPipeline":
        """Load any supported folder; ``lora`` may be a file, or for Wan2.2 a folder holding
        ``high_noise_pusa.safetensors`` and ``low_noise_pusa.safetensors``. ``with_text_encoder=False``
        (ranks other than 0 of a parallel run, which receive the embeddings) skips the UMT5 encoder.
        ``decoder``: a narrower VAE of the model's latent space that decodes instead of the model's
        own (faster, its own pixels; :mod:`pusa.light_decoder`); encoding keeps the model's VAE."""
        report = on_progress or (lambda component, status: None)
        check_offload(offload)
        speed = SpeedOptions(modulation=modulation, weights=weights, cache=cache, cache_threshold=cache_threshold,
                             attention=attention, compile=compile, preset=preset)
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        vdt = resolve_dtype(vae_dtype, dev)
        layout = detect_layout(model_dir)
        speed.check_loras(layout.is_wan22, extra_lora, extra_lora_low)
        mag_ratios = load_ratios(model_dir, len(layout.transformers)) if speed.cache == "magcache" else None
        per_expert = lora_files_per_expert(layout, lora, lora_low, extra_lora, extra_lora_low, use_default_lora)
        original = layout.kind != "diffusers"

        # the VAE first: it is small, and a --decoder of another latent space fails before the DiT loads
        report("vae", "loading")
        vae = load_vae(layout.vae, vdt)
        light = load_decoder(decoder, vae, vdt) if decoder is not None else None
        for v in (vae, light):
            if vae_tiling and v is not None:
                v.enable_tiling()
        report("vae", "ready")
        report("tokenizer", "loading")
        tokenizer = load_tokenizer(layout.tokenizer)
        report("tokenizer", "ready")
        report("text_encoder", "loading")
        text_dtype = torch.float32 if text_encoder_on_cpu else dt
        text_encoder = load_text_encoder(layout.text_encoder, text_dtype) if with_text_encoder else None
        report("text_encoder", "ready")
        transformers = []
        for i, path in enumerate(layout.transformers):
            name = "transformer" if i == 0 else "transformer_2"
            report(name, "loading")
            transformers.append(load_transformer(path, original, dt))
            report(name, "ready")
        family = loaded_family(layout, vae, transformers[0])
        speed.prepare(transformers)

        report("lora", "loading")
        merged, paths = [], []
        for model, files, folder in zip(transformers, per_expert, layout.transformers):
            files_weights: list[LoraWeights] = [load_lora(f) for f in files]
            paths += [str(f) for f in files]
            source = checkpoint_source(folder, original, dt) if files_weights else None  # originals stay on disk
            merged.append(MergedLoras(model, files_weights, compute_device=dev, source=source) if files_weights else None)
        report("lora", "ready")
        speed.apply(transformers, dt, mag_ratios)  # after the LoRA state is taken from the loaded weights

        models = {"text_encoder": text_encoder} if text_encoder is not None else {}
        models.update({("transformer" if i == 0 else f"transformer_{i + 1}"): m for i, m in enumerate(transformers)})
        models["vae"] = vae
        if light is not None:
            models["decoder"] = light
        place(models, dev, offload, keep_on_cpu=("text_encoder",) if text_encoder_on_cpu else ())
        pipe = cls(layout, transformers, vae, text_encoder, tokenizer, dev, dt, merged, paths,
                   torch.device("cpu") if text_encoder_on_cpu else dev, family, max_pixel_frames, light)
        pipe.speed = speed
        pipe.extra_lora_loaded = extra_lora is not None and (not layout.is_wan22 or extra_lora_low is not None)
        pipe.decoder_name = Path(decoder).name if light is not None else ""
        log.info("loaded %s (%s, %s) on %s/%s with %d LoRA file(s)%s", layout.label, layout.kind, family.name, dev, dt,
                 len(paths), f", decoding with {decoder} (decoder base_dim {decoder_width(light)})" if light else "")
        return pipe

    @property
    def presets(self) -> list[str]:
        """The presets a job may choose on this model (one needing a distillation LoRA only if it was loaded)."""
        return self.speed.available_presets(self.extra_lora_loaded)

    @property
    def defaults(self) -> ModelDefaults:
        return self.family.defaults

    @property
    def is_wan22(self) -> bool:
        return self.family.is_wan22

    @property
    def label(self) -> str:
        return self.layout.label

    # ------------------------------------------------------------------ building blocks

    def validate(self, settings: GenerationSettings, n_images: int = 0, has_video: bool = False) -> GenerationSettings:
        """Fill this model's defaults and the seed, and check the cross-field rules."""
        settings = self.speed.request_defaults(settings, self.extra_lora_loaded)
        return settings.resolve(self.family, n_images=n_images, has_video=has_video,
                                max_pixel_frames=self.max_pixel_frames)

    def latent_shape(self, settings: GenerationSettings) -> tuple[int, int, int, int, int]:
        return latent_shape(settings, self.family)

    def apply_lora_scales(self, settings: GenerationSettings) -> float:
        """Merge each expert's LoRAs at this request's alphas; returns the seconds spent (0 if unchanged)."""
        spent = 0.0
        for i, merged in enumerate(self.loras):
            if merged is None:
                continue
            alpha = settings.lora_alpha if i == 0 or settings.lora_alpha_low is None else settings.lora_alpha_low
            scales = [alpha] + [settings.extra_lora_scale] * (len(merged.loras) - 1)
            if merged.set_scales(scales):
                spent += merged.last_merge_seconds
        return spent

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """UMT5 embeddings padded to ``text_len``, zeroed past each prompt's real length."""
        if self.parallel is not None:  # rank 0 encodes, every rank receives
            return self.parallel.encode_text(self, prompts)
        emb, _ = encode_prompts(self.tokenizer, self.text_encoder, prompts, self.family.text_len, self.text_device)
        return emb.to(self.device, self.dtype)

    def encode_pixels(self, px: torch.Tensor) -> torch.Tensor:
        """Pixels (1, 3, T, H, W) in [-1, 1] -> per-channel normalised latents (float32, CPU)."""
        return self.codec.encode(px)

    def velocity_model(self, context: torch.Tensor, negative: torch.Tensor | None, cfg: float,
                       latent_hw: tuple[int, int]) -> WanVelocity:
        """The sampler's model over this pipeline's DiT(s) (one rank's share of it in a parallel run)."""
        if self.parallel is not None:
            return self.parallel.velocity_model(self, context, negative, cfg, latent_hw)
        return WanVelocity(self.transformers, self.family, context, negative, cfg, latent_hw, self.device, self.dtype,
                           modulation=self.speed.modulation)

    def read_inputs(self, s: GenerationSettings, images: Sequence[Image.Image | str | Path] | None,
                    video: str | Path | Sequence[Image.Image] | None
                    ) -> tuple[list[Image.Image], list[Image.Image] | None]:
        """Decode the request's images and video (video frames fitted to the output size as read)."""
        pil_images = iter_images(images)
        frames = None
        if video is not None:
            frames = (read_video_frames(video, max_frames=s.frames, fit=(s.width, s.height, s.fit))
                      if isinstance(video, (str, Path)) else [im.convert("RGB") for im in video])
        return pil_images, frames

    # ------------------------------------------------------------------ the three steps

    def prepare(self, s: GenerationSettings, images: list[Image.Image] | None = None,
                video: list[Image.Image] | None = None, anchors: dict[int, Anchor] | None = None,
                callback: ProgressCallback | None = None, timings: dict[str, float] | None = None) -> Prepared:
        """Text context and conditions of a resolved request (``anchors``: pre-encoded latents)."""
        report = callback or _silent
        timings = timings if timings is not None else {}
        report(StepInfo("text", 0, 1))
        t0 = time.perf_counter()
        use_cfg = s.cfg != 1.0
        emb = self.encode_text([s.prompt, s.negative_prompt] if use_cfg else [s.prompt])
        context, negative = emb[:1], (emb[1:2] if use_cfg else None)
        timings["text"] = time.perf_counter() - t0

        report(StepInfo("encode", 0, 1))
        t0 = time.perf_counter()
        shape = self.latent_shape(s)
        placed = get_task(s.task).condition_latents(
            s, lambda px: self.codec.encode(px, lambda done, total: report(StepInfo("encode", done, total))),
            self.family, images, video)
        conditions = place_conditions(shape, placed, s.cond_positions, s.noise_multipliers, anchors)
        timings["encode"] = time.perf_counter() - t0
        return Prepared(s, shape, context, negative, conditions)

    def denoise(self, prepared: Prepared, noise: torch.Tensor, callback: ProgressCallback | None = None
                ) -> tuple[torch.Tensor, WanVelocity]:
        """The VTA sampler from ``noise`` under ``prepared``'s conditions; returns latents and the model used."""
        report = callback or _silent
        s = prepared.settings
        eps = noise.float().cpu().to(self.device)
        cond = prepared.conditions.latents
        cond = cond.to(self.device) if cond is not None else None
        model = self.velocity_model(prepared.context, prepared.negative, s.cfg, prepared.shape[3:])
        sigmas = inference_sigmas(s.steps, s.shift)
        model.plan_steps(sigmas, prepared.conditions.multipliers)
        report(StepInfo("denoise", 0, s.steps))
        latents = sample(model, eps, sigmas, prepared.conditions.multipliers, cond,
                         callback=lambda st: report(StepInfo("denoise", st.step, st.total, denoised=st.denoised)))
        return latents, model

    def preview_image(self, latents: torch.Tensor) -> np.ndarray:
        """A small RGB strip of ``latents`` through a linear map fitted once for this VAE (no VAE call)."""
        if self._preview is None:
            from pusa.preview import LatentPreview

            self._preview = LatentPreview.fit(self.codec, self.family)
        return self._preview.image(latents)

    def decode(self, latents: torch.Tensor, callback: ProgressCallback | None = None) -> np.ndarray:
        """Normalised latents -> uint8 frames (T, H, W, 3), reporting each decoded latent frame."""
        report = callback or _silent
        if self.parallel is not None and not self.parallel.decodes:  # rank 0 alone decodes and writes
            stride = self.family.spatial_stride
            return np.zeros((0, latents.shape[3] * stride, latents.shape[4] * stride, 3), np.uint8)
        return self.codec.decode(latents, lambda done, total: report(StepInfo("decode", done, total)))

    # ------------------------------------------------------------------ the request

    def generate(self, settings: GenerationSettings, *, images: Sequence[Image.Image | str | Path] | None = None,
                 video: str | Path | Sequence[Image.Image] | None = None, noise: torch.Tensor | None = None,
                 anchors: dict[int, Anchor] | None = None, callback: ProgressCallback | None = None,
                 return_latents: bool = False) -> GenerationResult:
        """Generate one video. Raise ``InputError`` for bad input, ``GenerationCancelled`` if the
        callback asks to stop (it is called after every step of every phase)."""
        report = callback or _silent
        timings: dict[str, float] = {}
        started = time.perf_counter()

        s = self.validate(settings, n_images=len(images or []), has_video=video is not None)
        shape = self.latent_shape(s)
        if noise is not None and tuple(noise.shape) != shape:
            raise InputError(f"noise: shape {tuple(noise.shape)} does not match the request; expected {shape}")
        pil_images, frames_in = self.read_inputs(s, images, video)

        report(StepInfo("lora", 0, 1))
        timings["lora"] = self.apply_lora_scales(s)

        prepared = self.prepare(s, pil_images, frames_in, anchors, report, timings)

        t0 = time.perf_counter()
        eps = noise if noise is not None else seeded_noise(shape, s.seed)
        latents, model = self.denoise(prepared, eps, report)
        timings["denoise"] = time.perf_counter() - t0
        timings["per_step"] = timings["denoise"] / s.steps

        report(StepInfo("decode", 0, shape[2]))
        t0 = time.perf_counter()
        frames = self.decode(latents, report)
        timings["decode"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - started
        return GenerationResult(frames=frames, settings=s, timings=timings, model=self.label, loras=self.lora_paths,
                                experts=model.experts, latents=latents.cpu() if return_latents else None,
                                stats=model.stats, decoder=self.decoder_name)


def loaded_family(layout: ModelLayout, vae: torch.nn.Module, transformer: torch.nn.Module) -> ModelFamily:
    """The family read from the loaded components' configs (authoritative over the folder's files)."""
    family = family_from_configs(dict(vae.config), dict(transformer.config), experts=len(layout.transformers),
                                 boundary=layout.family.boundary, text_len=layout.family.text_len)
    family = replace(family, name=layout.family.name, defaults=layout.family.defaults)
    if int(transformer.config.in_channels) != family.latent_channels:
        raise ModelLoadError(f"the DiT takes {transformer.config.in_channels} latent channels but the VAE makes "
                             f"{family.latent_channels}; the VAE and the transformer are from different models")
    return family
