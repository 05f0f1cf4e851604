"""Model families: the geometry of a Wan-style model, read from its component configs.

Everything the engine needs to know about a model's shape lives here, so no other module hard-codes
16 latent channels, 4x/8x strides, a (1, 2, 2) patch or an 81-frame window. Diffusers' own
pipelines read the same facts from ``vae.config`` (``scale_factor_temporal``/``_spatial``, ``z_dim``)
and ``transformer.config`` (``patch_size``, heads); :func:`family_from_configs` does the same, before
any weight is loaded, so every edge can check a request against the model it is about to load.

Instances: Wan2.1-T2V-14B (and 1.3B), Wan2.2-T2V-A14B (two experts), Wan2.2-TI2V-5B (48 channels,
16x spatial stride), and the bundled pusa-tiny (Wan2.1 geometry with a 64x64, 33-frame window).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

WAN22_BOUNDARY = 0.875  # Wan2.2-A14B: the high-noise expert runs while t >= 0.875 * 1000


@dataclass(frozen=True)
class ModelDefaults:
    """What a model decides when a request leaves size or frames open."""

    width: int = 832
    height: int = 480
    frames: int = 81
    fps: int = 16


@dataclass(frozen=True)
class ModelFamily:
    """Geometry and defaults of one model; every length conversion in the engine goes through it."""

    name: str = "wan2.1"
    latent_channels: int = 16
    temporal_stride: int = 4
    spatial_stride: int = 8
    patch: tuple[int, int, int] = (1, 2, 2)
    num_heads: int = 40
    experts: int = 1
    boundary: float | None = None
    text_len: int = 512
    defaults: ModelDefaults = ModelDefaults()

    # ------------------------------------------------------------------ sizes

    @property
    def is_wan22(self) -> bool:
        """Two experts (high noise, low noise) switched at :attr:`boundary`."""
        return self.experts == 2

    @property
    def size_multiple(self) -> int:
        """Width and height must be multiples of this (VAE stride times DiT patch: 16 for Wan2.1)."""
        return self.spatial_stride * self.patch[1]

    @property
    def native_frames(self) -> int:
        """Pixel frames of the window the model was trained on (81 for Wan, 33 for pusa-tiny)."""
        return self.defaults.frames

    @property
    def native_latent_frames(self) -> int:
        return self.latent_frames(self.native_frames)

    def valid_frames(self, frames: int) -> bool:
        """Pixel frame counts the causal VAE maps onto whole latent frames: ``stride * k + 1``."""
        return frames >= 1 and (frames - 1) % self.temporal_stride == 0

    def latent_frames(self, frames: int) -> int:
        """Latent frames for ``frames`` pixel frames (causal: 81 -> 21 at stride 4)."""
        return (frames - 1) // self.temporal_stride + 1

    def pixel_frames(self, latent_frames: int) -> int:
        """Pixel frames that ``latent_frames`` latent frames decode to (21 -> 81)."""
        return (latent_frames - 1) * self.temporal_stride + 1

    def pixel_range(self, position: int) -> tuple[int, int]:
        """Pixel frames ``[first, last]`` that latent ``position`` stands for (slot 0 is frame 0 alone)."""
        if position == 0:
            return (0, 0)
        return (self.temporal_stride * (position - 1) + 1, self.temporal_stride * position)

    def frames_needed(self, position: int) -> int:
        """Pixel frames a video must have for latent ``position`` to exist."""
        return self.temporal_stride * position + 1

    def latent_shape(self, width: int, height: int, frames: int) -> tuple[int, int, int, int, int]:
        """``(1, C, F, H / stride, W / stride)`` of the latents of one video."""
        return (1, self.latent_channels, self.latent_frames(frames), height // self.spatial_stride,
                width // self.spatial_stride)

    def tokens_per_frame(self, latent_height: int, latent_width: int) -> int:
        """DiT tokens per latent frame (the patch tiles each latent frame)."""
        return (latent_height // self.patch[1]) * (latent_width // self.patch[2])

    def with_defaults(self, **changes: Any) -> "ModelFamily":
        return replace(self, defaults=replace(self.defaults, **changes))

    def describe(self) -> str:
        d = self.defaults
        experts = f", {self.experts} experts (boundary {self.boundary})" if self.experts > 1 else ""
        return (f"{self.name}: {self.latent_channels} latent channels, stride {self.temporal_stride}x"
                f"{self.spatial_stride}x{self.spatial_stride}, patch {'x'.join(map(str, self.patch))}, "
                f"{self.num_heads} heads{experts}; default {d.width}x{d.height}, {d.frames} frames at {d.fps} fps")


# The released families (defaults as their model cards give them).
WAN21 = ModelFamily()
WAN22_A14B = ModelFamily(name="wan2.2-a14b", experts=2, boundary=WAN22_BOUNDARY)
WAN22_TI2V_5B = ModelFamily(name="wan2.2-ti2v-5b", latent_channels=48, spatial_stride=16, num_heads=24,
                            defaults=ModelDefaults(width=1280, height=704, frames=121, fps=24))


def family_from_configs(vae: dict[str, Any], transformer: dict[str, Any], *, experts: int = 1,
                        boundary: float | None = None, meta: dict[str, Any] | None = None,
                        text_len: int = 512) -> ModelFamily:
    """The family of a model from its VAE and DiT configs (diffusers names) and ``pusa.json``.

    ``meta`` (a model folder's ``pusa.json``) may set ``width``, ``height``, ``frames``, ``fps`` and a
    ``family`` name; otherwise the defaults of the released family with the same geometry apply.
    """
    meta = meta or {}
    channels = int(vae.get("z_dim", transformer.get("in_channels", 16)))
    temporal = int(vae.get("scale_factor_temporal") or 4)
    spatial = int(vae.get("scale_factor_spatial") or 8)
    patch = tuple(int(p) for p in transformer.get("patch_size", (1, 2, 2)))
    heads = int(transformer.get("num_attention_heads", 40))
    if channels == WAN22_TI2V_5B.latent_channels and spatial == WAN22_TI2V_5B.spatial_stride:
        base = WAN22_TI2V_5B
    elif experts == 2:
        base = WAN22_A14B
    else:
        base = WAN21
    defaults = ModelDefaults(width=int(meta.get("width", base.defaults.width)),
                             height=int(meta.get("height", base.defaults.height)),
                             frames=int(meta.get("frames", base.defaults.frames)),
                             fps=int(meta.get("fps", base.defaults.fps)))
    return ModelFamily(name=str(meta.get("family", base.name)), latent_channels=channels, temporal_stride=temporal,
                       spatial_stride=spatial, patch=patch, num_heads=heads, experts=experts,
                       boundary=(boundary if boundary is not None else WAN22_BOUNDARY) if experts == 2 else None,
                       text_len=int(meta.get("text_len", text_len)), defaults=defaults)
