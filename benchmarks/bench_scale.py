"""Model-scale memory and FLOPs of one DiT forward, measured on the meta device (no weights, no GPU).

For the Wan2.1-14B and Wan2.2-A14B DiT configs at 832x480x81 and 1280x720x81 the DiT is built
through the engine's own path (``dit_config_from_original`` on the published ``config.json``, the
speed options the pipeline applies, ``WanVelocity.timestep`` for the timestep layout) on the meta
device; one forward under ``no_grad`` (batch 1, 512 text tokens) is measured with
``pusa.speed.scale.PeakBytes`` (the activation figure of torch's ``MemTracker``, checked equal in the
tests, ten times faster) and ``FlopCounterMode`` (FLOPs). Modulation: ``scalar`` (every
frame at one timestep), ``per_token`` (diffusers' per-token timesteps) and ``per_frame`` (ours);
weights: ``bf16`` and ``fp8`` (float8_e4m3fn storage, layerwise casting to bf16).

"What fits" adds, per offload mode, the GPU-resident weights to the activation peak plus a fixed
reserve (CUDA context, allocator slack, VAE decode with tiling), against 24/48/80/141 GB cards:
``none`` keeps every DiT, the UMT5-XXL encoder and the VAE on the GPU; ``model`` one component at a
time (one DiT); ``group`` streams the DiT block by block (the largest block plus the rest of the DiT
outside the blocks); ``none+text_encoder_cpu`` is ``none`` with ``--text-encoder-cpu``.

Usage: python benchmarks/bench_scale.py [--json] [--models wan21-14b,wan22-a14b] [--sizes 832x480,1280x720]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

log = logging.getLogger("bench_scale")

GIB = 2**30
GPU_CARDS = {"24GB": 24, "48GB": 48, "80GB": 80, "141GB": 139}  # usable GiB (an H200 reports ~139 GiB)
RESERVE_BYTES = int(2.5 * GIB)  # CUDA context + allocator slack + a tiled VAE decode step
TEXT_TOKENS = 512
FRAMES = 81
# The published Wan config.json of the 14B DiTs (Wan2.2-A14B: each of its two experts has this shape).
WAN_14B_CONFIG = {"dim": 5120, "ffn_dim": 13824, "freq_dim": 256, "in_dim": 16, "out_dim": 16, "num_heads": 40,
                  "num_layers": 40, "eps": 1e-6, "text_len": 512, "model_type": "t2v"}
MODELS = {"wan21-14b": ("Wan2.1-14B", 1), "wan22-a14b": ("Wan2.2-A14B", 2)}
SIZES = {"832x480": (832, 480), "1280x720": (1280, 720)}
MODULATIONS = ("scalar", "per_token", "per_frame")
WEIGHTS = ("bf16", "fp8")
UMT5_XXL = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                relative_attention_num_buckets=32, feed_forward_proj="gated-gelu", tie_word_embeddings=False)


def dit_config() -> dict:
    """The diffusers kwargs the engine's loader derives from a 14B ``config.json`` (shapes stand in for weights)."""
    from pusa.loading.components import dit_config_from_original

    c = WAN_14B_CONFIG
    shapes = {"patch_embedding.weight": (c["dim"], c["in_dim"], 1, 2, 2), "blocks.0.ffn.0.weight": (c["ffn_dim"], c["dim"]),
              f"blocks.{c['num_layers'] - 1}.ffn.0.weight": (c["ffn_dim"], c["dim"]),
              "time_embedding.0.weight": (c["dim"], c["freq_dim"]), "text_embedding.0.weight": (c["dim"], 4096),
              "head.head.weight": (c["out_dim"] * 4, c["dim"])}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(c))
        return dit_config_from_original(Path(tmp), {k: torch.empty(s, device="meta") for k, s in shapes.items()})


def outside_blocks_bytes(dit: torch.nn.Module) -> tuple[int, int]:
    """(bytes of the DiT outside its blocks, bytes of its largest block): what group offload keeps on the GPU."""
    from pusa.speed.weights import parameter_bytes

    blocks = [parameter_bytes(b) for b in dit.blocks]
    return parameter_bytes(dit) - sum(blocks), max(blocks)


def measure_weights(config: dict, weights: str, sizes: list[str]) -> dict[tuple[str, str], dict]:
    """Every (size, modulation) of one weights mode on one meta-device DiT (the per-frame hooks are inert
    for scalar and per-token timesteps, so one model serves all three)."""
    from pusa.family import WAN21
    from pusa.speed.options import SpeedOptions
    from pusa.speed.scale import measure_forward, meta_dit
    from pusa.speed.weights import parameter_bytes
    from pusa.velocity import WanVelocity

    dit = meta_dit(config, SpeedOptions(weights=weights))
    outside, largest_block = outside_blocks_bytes(dit)
    out = {}
    for size in sizes:
        width, height = SIZES[size]
        shape = WAN21.latent_shape(width, height, FRAMES)
        frames = shape[2]
        for modulation in MODULATIONS:
            started = time.perf_counter()
            t = torch.full((frames,), 900.0) if modulation == "scalar" else torch.linspace(0, 1000, frames).round()
            velocity = WanVelocity([dit], WAN21, torch.empty(0), None, 1.0, shape[3:], torch.device("cpu"),
                                   torch.bfloat16, modulation="per_token" if modulation == "scalar" else modulation)
            got = measure_forward(dit, shape, velocity.timestep(t), TEXT_TOKENS)
            got.update(param_bytes=parameter_bytes(dit), group_resident_bytes=outside + largest_block)
            log.info("%s %s %s: %.2f GiB activations, %.0f TFLOP (%.0fs)", size, weights, modulation,
                     got["peak_activation_bytes"] / GIB, got["flops_per_forward"] / 1e12,
                     time.perf_counter() - started)
            out[(size, modulation)] = got
    return out


def component_bytes() -> dict:
    """UMT5-XXL encoder and the Wan2.1 VAE in bf16, built on the meta device."""
    from diffusers import AutoencoderKLWan
    from transformers import UMT5Config, UMT5EncoderModel

    from pusa.loading.components import _meta_init

    t5 = _meta_init(UMT5EncoderModel, config=UMT5Config(**UMT5_XXL))
    t5.tie_weights()  # the encoder's token embedding is the shared one (one tensor once loaded)
    vae = _meta_init(AutoencoderKLWan, base_dim=96, z_dim=16)
    return {"text_encoder": sum(p.numel() for p in t5.parameters()) * 2,
            "vae": sum(p.numel() for p in vae.parameters()) * 4}  # the engine runs the VAE in fp32


def fits(record: dict, experts: int, parts: dict) -> dict:
    """Per card, the offload modes whose denoising-phase GPU need fits, and the need per mode."""
    act = record["peak_activation_bytes"]
    one_dit = record["param_bytes"] // experts
    need = {"none": record["param_bytes"] + parts["text_encoder"] + parts["vae"] + act + RESERVE_BYTES,
            "none+text_encoder_cpu": record["param_bytes"] + parts["vae"] + act + RESERVE_BYTES,
            "model": one_dit + act + RESERVE_BYTES,
            "group": record.pop("group_resident_bytes") + act + RESERVE_BYTES}
    return {"gpu_bytes_needed": need,
            "fits": {card: [m for m, b in need.items() if b <= gib * GIB] for card, gib in GPU_CARDS.items()}}


def run(models: list[str], sizes: list[str]) -> list[dict]:
    """Records for every model x size x weights x modulation. Both 14B models have the same DiT shape
    (Wan2.2-A14B runs one of its two experts per forward), so each forward is measured once."""
    config = dit_config()
    parts = component_bytes()
    measured = {weights: measure_weights(config, weights, sizes) for weights in WEIGHTS}
    records = []
    for key in models:
        label, experts = MODELS[key]
        for size in sizes:
            width, height = SIZES[size]
            for weights in WEIGHTS:
                for modulation in MODULATIONS:
                    got = dict(measured[weights][(size, modulation)])
                    got["param_bytes"] *= experts
                    record = {"model": label, "width": width, "height": height, "frames": FRAMES,
                              "modulation": modulation, "weights": weights, **got}
                    record.update(fits(record, experts, parts))
                    records.append(record)
    return records


def table(records: list[dict]) -> str:
    """A Markdown table of the records (GiB, TFLOP) for the README."""
    lines = ["| model | size | weights | modulation | TFLOP/forward | activation peak | DiT weights | fits (offload) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        fit = "; ".join(f"{card}: {', '.join(modes) or '-'}" for card, modes in r["fits"].items())
        lines.append(f"| {r['model']} | {r['width']}x{r['height']}x{r['frames']} | {r['weights']} | {r['modulation']} "
                     f"| {r['flops_per_forward'] / 1e12:,.0f} | {r['peak_activation_bytes'] / GIB:.2f} GiB "
                     f"| {r['param_bytes'] / GIB:.1f} GiB | {fit} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", action="store_true", help="print the records as one JSON list (default: a table)")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    p.add_argument("--sizes", default=",".join(SIZES), help=f"comma list of {', '.join(SIZES)}")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    models, sizes = args.models.split(","), args.sizes.split(",")
    for name, values, allowed in (("models", models, MODELS), ("sizes", sizes, SIZES)):
        bad = [v for v in values if v not in allowed]
        if bad:
            p.error(f"--{name}: {bad[0]!r} is not allowed; expected {', '.join(allowed)}")
    records = run(models, sizes)
    print(json.dumps(records, indent=1) if args.json else table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
