"""The engine: check inputs, encode text, encode conditions, denoise, decode — for every task.

Reading order follows diffusers' pipelines. The CLI, the web studio, the HTTP API and the trainer's
sample videos all call ``PusaPipeline.generate``; no edge has its own copy of any step.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from pusa.conditions import build_conditions
from pusa.errors import InputError, ModelLoadError
from pusa.loading.components import quiet_library_progress, load_text_encoder, load_tokenizer, load_transformer, load_vae
from pusa.loading.devices import check_offload, place, resolve_device, resolve_dtype
from pusa.loading.layout import ModelLayout, detect_layout
from pusa.loading.lora import LoraWeights, MergedLoras, load_lora
from pusa.media import iter_images, read_video_frames
from pusa.sampler import SamplerStep, guided, sample
from pusa.schedule import inference_sigmas
from pusa.settings import GenerationSettings, ModelDefaults, latent_frames

log = logging.getLogger(__name__)

LATENT_CHANNELS = 16
SPATIAL, TEMPORAL = 8, 4


@dataclass(frozen=True)
class StepInfo:
    """Progress of one request: phase ("lora", "text", "encode", "denoise", "decode"), step of total."""

    phase: str
    step: int
    total: int


@dataclass
class GenerationResult:
    """Decoded frames plus everything needed to reproduce them."""

    frames: np.ndarray  # uint8 (T, H, W, 3)
    settings: GenerationSettings  # resolved: size, frames and the seed actually used
    timings: dict[str, float]
    model: str = ""
    loras: list[str] = field(default_factory=list)
    experts: list[str] = field(default_factory=list)  # which DiT ran at each step (Wan2.2: high/low)
    latents: torch.Tensor | None = None

    @property
    def fps(self) -> int:
        return self.settings.fps

    @property
    def seed(self) -> int:
        return int(self.settings.seed)

    def metadata(self) -> dict[str, Any]:
        return {"settings": self.settings.to_public_dict(), "seed": self.seed, "model": self.model,
                "loras": self.loras, "timings": {k: round(v, 4) for k, v in self.timings.items()},
                "generator": "pusa"}


ProgressCallback = Callable[[StepInfo], None]
LoadProgress = Callable[[str, str], None]


def latent_shape(settings: GenerationSettings) -> tuple[int, int, int, int, int]:
    return (1, LATENT_CHANNELS, latent_frames(settings.frames), settings.height // SPATIAL, settings.width // SPATIAL)


def seeded_noise(shape: Sequence[int], seed: int) -> torch.Tensor:
    """Wan's convention: float32 ``randn`` from a CPU generator, so a seed means one video on any device."""
    return torch.randn(tuple(shape), generator=torch.Generator("cpu").manual_seed(int(seed)), dtype=torch.float32)


class PusaPipeline:
    """One loaded model (Wan2.1 or Wan2.2) with its LoRAs, ready to generate any task."""

    def __init__(self, layout: ModelLayout, transformers: list[torch.nn.Module], vae: torch.nn.Module,
                 text_encoder: torch.nn.Module, tokenizer: Any, device: torch.device, dtype: torch.dtype,
                 loras: list[MergedLoras | None], lora_paths: list[str], text_device: torch.device | None = None):
        self.layout = layout
        self.transformers = transformers
        self.vae = vae
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = dtype
        self.loras = loras
        self.lora_paths = lora_paths
        self.text_device = text_device or device
        cfg = vae.config
        self._mean = torch.tensor(cfg.latents_mean, dtype=torch.float32).view(1, -1, 1, 1, 1)
        self._std = torch.tensor(cfg.latents_std, dtype=torch.float32).view(1, -1, 1, 1, 1)

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, *, lora: str | Path | None = None,
                        lora_low: str | Path | None = None, extra_lora: str | Path | None = None,
                        extra_lora_low: str | Path | None = None, use_default_lora: bool = True,
                        device: str = "auto", dtype: str = "auto", vae_dtype: str = "fp32", offload: str = "none",
                        vae_tiling: bool = False, text_encoder_on_cpu: bool = False,
                        on_progress: LoadProgress | None = None) -> "PusaPipeline":
        """Load any supported folder; ``lora`` may be a file, or for Wan2.2 a folder holding
        ``high_noise_pusa.safetensors`` and ``low_noise_pusa.safetensors``."""
        report = on_progress or (lambda component, status: None)
        quiet_library_progress()
        check_offload(offload)
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        vdt = resolve_dtype(vae_dtype, dev)
        layout = detect_layout(model_dir)
        original = layout.kind != "diffusers"

        report("tokenizer", "loading")
        tokenizer = load_tokenizer(layout.tokenizer)
        report("tokenizer", "ready")
        report("text_encoder", "loading")
        text_dtype = torch.float32 if text_encoder_on_cpu else dt
        text_encoder = load_text_encoder(layout.text_encoder, text_dtype)
        report("text_encoder", "ready")
        transformers = []
        for i, path in enumerate(layout.transformers):
            name = "transformer" if i == 0 else "transformer_2"
            report(name, "loading")
            transformers.append(load_transformer(path, original, dt))
            report(name, "ready")
        report("vae", "loading")
        vae = load_vae(layout.vae, vdt)
        if vae_tiling:
            vae.enable_tiling()
        report("vae", "ready")

        report("lora", "loading")
        per_expert = _lora_files(layout, lora, lora_low, extra_lora, extra_lora_low, use_default_lora)
        merged, paths = [], []
        for model, files in zip(transformers, per_expert):
            weights: list[LoraWeights] = [load_lora(f) for f in files]
            paths += [str(f) for f in files]
            merged.append(MergedLoras(model, weights, compute_device=dev) if weights else None)
        report("lora", "ready")

        models = {"text_encoder": text_encoder}
        models.update({("transformer" if i == 0 else f"transformer_{i + 1}"): m for i, m in enumerate(transformers)})
        models["vae"] = vae
        place(models, dev, offload, keep_on_cpu=("text_encoder",) if text_encoder_on_cpu else ())
        pipe = cls(layout, transformers, vae, text_encoder, tokenizer, dev, dt, merged, paths,
                   torch.device("cpu") if text_encoder_on_cpu else dev)
        log.info("loaded %s (%s) on %s/%s with %d LoRA file(s)", layout.label, layout.kind, dev, dt, len(paths))
        return pipe

    @property
    def defaults(self) -> ModelDefaults:
        return self.layout.defaults

    @property
    def is_wan22(self) -> bool:
        return self.layout.is_wan22

    @property
    def label(self) -> str:
        return self.layout.label

    # ------------------------------------------------------------------ steps

    def validate(self, settings: GenerationSettings, n_images: int = 0, has_video: bool = False) -> GenerationSettings:
        """Fill this model's defaults and the seed, and check the cross-field rules."""
        return settings.resolve(self.defaults, n_images=n_images, has_video=has_video, wan22=self.is_wan22)

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

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """UMT5 embeddings padded to ``text_len``, zeroed past each prompt's real length."""
        tok = self.tokenizer([" ".join(p.split()) for p in prompts], padding="max_length",
                             max_length=self.layout.text_len, truncation=True, add_special_tokens=True,
                             return_attention_mask=True, return_tensors="pt")
        ids, mask = tok.input_ids.to(self.text_device), tok.attention_mask.to(self.text_device)
        emb = self.text_encoder(ids, mask).last_hidden_state.float()
        keep = mask.unsqueeze(-1).to(emb.dtype)
        return (emb * keep).to(self.device, self.dtype)

    @torch.no_grad()
    def encode_pixels(self, px: torch.Tensor) -> torch.Tensor:
        """Pixels (1, 3, T, H, W) in [-1, 1] -> per-channel normalised latents (float32, CPU)."""
        dtype = next(self.vae.parameters()).dtype
        z = self.vae.encode(px.to(self.device, dtype)).latent_dist.mode().float().cpu()
        return (z - self._mean) / self._std

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        """Normalised latents -> uint8 frames (T, H, W, 3)."""
        dtype = next(self.vae.parameters()).dtype
        z = latents.float().cpu() * self._std + self._mean
        video = self.vae.decode(z.to(self.device, dtype), return_dict=False)[0].float().cpu()
        video = ((video.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
        return video[0].permute(1, 2, 3, 0).numpy()

    def velocity_model(self, context: torch.Tensor, negative: torch.Tensor | None, cfg: float,
                       grid: tuple[int, int], experts: list[str]):
        """The sampler's model: picks the Wan2.2 expert by timestep, feeds per-token timesteps, applies CFG."""
        tokens_per_frame = (grid[0] // 2) * (grid[1] // 2)
        boundary = (self.layout.boundary or 0.0) * 1000.0

        def forward_with(dit: torch.nn.Module):
            def forward(x: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
                if bool((t == t[0]).all()):
                    timestep = t[:1].to(self.device)
                else:  # vectorised timesteps: one value per latent frame, repeated over its tokens
                    timestep = t.repeat_interleave(tokens_per_frame)[None].to(self.device)
                return dit(hidden_states=x.to(self.device, self.dtype), timestep=timestep,
                           encoder_hidden_states=ctx, return_dict=False)[0]
            return forward

        guided_models = [guided(forward_with(d), context, negative, cfg) for d in self.transformers]

        def model(x: torch.Tensor, t: torch.Tensor, step: int) -> torch.Tensor:
            index = 0 if not self.is_wan22 or float(t.max()) >= boundary else 1
            experts.append("high" if self.is_wan22 and index == 0 else "low" if self.is_wan22 else "single")
            return guided_models[index](x.to(self.device), t)

        return model

    # ------------------------------------------------------------------ the request

    def generate(self, settings: GenerationSettings, *, images: Sequence[Image.Image | str | Path] | None = None,
                 video: str | Path | Sequence[Image.Image] | None = None, noise: torch.Tensor | None = None,
                 callback: ProgressCallback | None = None, return_latents: bool = False) -> GenerationResult:
        """Generate one video. Raise ``InputError`` for bad input, ``GenerationCancelled`` if the
        callback asks to stop (checked after every step)."""
        report = callback or (lambda info: None)
        timings: dict[str, float] = {}
        started = time.perf_counter()

        # 1. check inputs
        s = self.validate(settings, n_images=len(images or []), has_video=video is not None)
        shape = latent_shape(s)
        if noise is not None and tuple(noise.shape) != shape:
            raise InputError(f"noise: shape {tuple(noise.shape)} does not match the request; expected {shape}")
        pil_images = iter_images(images)
        frames_in = None
        if video is not None:
            frames_in = (read_video_frames(video, max_frames=s.frames) if isinstance(video, (str, Path))
                         else [im.convert("RGB") for im in video])

        # 2. LoRA strength for this request (merged from the original weights when it changes)
        report(StepInfo("lora", 0, 1))
        timings["lora"] = self.apply_lora_scales(s)

        # 3. text
        report(StepInfo("text", 0, 1))
        t0 = time.perf_counter()
        use_cfg = s.cfg != 1.0
        emb = self.encode_text([s.prompt, s.negative_prompt] if use_cfg else [s.prompt])
        context, negative = emb[:1], (emb[1:2] if use_cfg else None)
        timings["text"] = time.perf_counter() - t0

        # 4. conditions
        report(StepInfo("encode", 0, 1))
        t0 = time.perf_counter()
        conditions = build_conditions(s, self.encode_pixels, shape, pil_images, frames_in)
        timings["encode"] = time.perf_counter() - t0

        # 5. denoise
        t0 = time.perf_counter()
        eps = (noise.float().cpu() if noise is not None else seeded_noise(shape, s.seed)).to(self.device)
        cond = conditions.latents.to(self.device) if conditions.latents is not None else None
        experts: list[str] = []
        model = self.velocity_model(context, negative, s.cfg, (shape[3], shape[4]), experts)
        report(StepInfo("denoise", 0, s.steps))
        latents = sample(model, eps, inference_sigmas(s.steps, s.shift), conditions.multipliers, cond,
                         callback=lambda st: report(StepInfo("denoise", st.step, st.total)))
        timings["denoise"] = time.perf_counter() - t0
        timings["per_step"] = timings["denoise"] / s.steps

        # 6. decode
        report(StepInfo("decode", 0, 1))
        t0 = time.perf_counter()
        frames = self.decode(latents)
        timings["decode"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - started
        report(StepInfo("decode", 1, 1))
        return GenerationResult(frames=frames, settings=s, timings=timings, model=self.label, loras=self.lora_paths,
                                experts=experts, latents=latents.cpu() if return_latents else None)


def _lora_files(layout: ModelLayout, lora, lora_low, extra, extra_low, use_default: bool) -> list[list[Path]]:
    """LoRA files per expert: ``[[pusa, extra?]]`` for Wan2.1, ``[[high...], [low...]]`` for Wan2.2."""
    if lora is None and use_default and layout.default_lora is not None:
        lora = layout.default_lora
    lora = Path(lora).expanduser() if lora is not None else None
    if not layout.is_wan22:
        for name, p in (("lora_low", lora_low), ("extra_lora_low", extra_low)):
            if p is not None:
                raise InputError(f"{name}: only a Wan2.2 (high/low noise) model takes a second LoRA per expert")
        files = [p for p in (lora, Path(extra).expanduser() if extra else None) if p is not None]
        for f in files:
            if not f.is_file():
                raise ModelLoadError(f"LoRA file not found: {f}")
        return [files]
    high = lora
    low = Path(lora_low).expanduser() if lora_low else None
    if high is not None and high.is_dir():
        folder = high
        high, low = folder / "high_noise_pusa.safetensors", low or folder / "low_noise_pusa.safetensors"
    if (high is None) != (low is None):
        raise InputError("lora_low: a Wan2.2 model needs both LoRAs (high and low noise) or neither")
    out: list[list[Path]] = [[], []]
    for i, (main, ext) in enumerate(((high, extra), (low, extra_low))):
        for p in (main, Path(ext).expanduser() if ext else None):
            if p is None:
                continue
            if not p.is_file():
                raise ModelLoadError(f"LoRA file not found: {p}")
            out[i].append(p)
    return out
