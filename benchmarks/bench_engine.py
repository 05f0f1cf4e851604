"""Engine benchmark: seconds per denoising step, per request phase, LoRA re-merge time and peak memory.

Prints one JSON object. Configs:
- ``tiny``: the test-size model, written to disk in the diffusers layout and loaded by the real loader.
- ``mid``: a mid-size Wan DiT (dim 512, 8 layers) and a Wan VAE with base_dim 32, same path.
- ``full``: the real Wan2.1-T2V-14B DiT shape (dim 5120, 40 layers) with random bf16 weights and a
  random rank-512 Pusa-style LoRA, at 832x480x81 (32,760 tokens); only when a CUDA GPU is present.
  The full VAE (base_dim 96) is random too; the text encoder is the tiny one (T5 time is reported
  separately from the DiT time, and a 14B T5 adds nothing to what this measures).

Usage: python benchmarks/bench_engine.py [--configs tiny,mid,full] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_requests(pipe, settings, repeats: int = 2) -> dict:
    from pusa.settings import GenerationSettings

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    pipe.generate(GenerationSettings.parse({**settings, "steps": 1}))  # warm-up (kernels, allocator)
    runs = [pipe.generate(GenerationSettings.parse(settings)).timings for _ in range(repeats)]
    best = min(runs, key=lambda t: t["total"])
    out = {"phases_s": {k: round(best[k], 4) for k in ("text", "encode", "denoise", "decode", "total")},
           "seconds_per_step": round(best["per_step"], 4)}
    # LoRA alpha change: one re-merge from the original weights
    if any(m is not None for m in pipe.loras):
        t0 = time.perf_counter()
        pipe.apply_lora_scales(GenerationSettings.parse({**settings, "lora_alpha": 0.7}))
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out["lora_remerge_s"] = round(time.perf_counter() - t0, 4)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    if torch.cuda.is_available():
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def bench_from_disk(name: str, dit: dict, vae_base: int, size: str, frames: int, steps: int) -> dict:
    from pusa.pipeline import PusaPipeline
    from pusa.testing import layouts

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / name
        old_dit, old_vae = dict(layouts.TINY_DIT), layouts.TINY_VAE_BASE_DIM
        layouts.TINY_DIT.update(dit)
        layouts.TINY_VAE_BASE_DIM = vae_base
        try:
            layouts.write_tiny_diffusers(root)
            lora = layouts.write_lora(Path(tmp) / "lora.safetensors", layouts.make_tiny_dit(0), "pusa", rank=16)
        finally:
            layouts.TINY_DIT.clear()
            layouts.TINY_DIT.update(old_dit)
            layouts.TINY_VAE_BASE_DIM = old_vae
        t0 = time.perf_counter()
        pipe = PusaPipeline.from_pretrained(root, lora=lora)
        load = time.perf_counter() - t0
        settings = {"prompt": "a red ball bounces", "size": size, "frames": frames, "steps": steps, "seed": 0,
                    "task": "t2v"}
        res = run_requests(pipe, settings)
        params = sum(p.numel() for p in pipe.transformers[0].parameters())
        return {"config": name, "device": str(pipe.device), "dtype": str(pipe.dtype).replace("torch.", ""),
                "dit_params_m": round(params / 1e6, 2), "size": size, "frames": frames, "steps": steps, "cfg": 5.0,
                "load_s": round(load, 3), **res}


def bench_full(steps: int) -> dict:
    """The 14B DiT shape with random bf16 weights, on the GPU, through the same pipeline class."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    from pusa.loading.layout import ModelLayout
    from pusa.loading.lora import MergedLoras, parse_lora
    from pusa.pipeline import PusaPipeline
    from pusa.family import WAN21
    from pusa.testing.layouts import (TINY_TEXT_LEN, named_lora_state_dict, make_lora_tensors, make_tiny_t5,
                                      make_tiny_tokenizer)

    dev = torch.device("cuda")
    cfg = dict(patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=16, out_channels=16,
               text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True,
               qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
    with init_empty_weights():
        dit = WanTransformer3DModel(**cfg)
    dit = dit.to_empty(device=dev).to(torch.bfloat16)
    keep = WanTransformer3DModel._keep_in_fp32_modules
    g = torch.Generator(dev).manual_seed(0)
    with torch.no_grad():
        for name, p in dit.named_parameters():
            if any(k in name for k in keep):
                p.data = p.data.float()
            p.normal_(0, 0.02, generator=g)
    dit.eval().requires_grad_(False)
    vae = AutoencoderKLWan().to(dev).eval().requires_grad_(False)
    tok = make_tiny_tokenizer()
    t5 = make_tiny_t5(len(tok)).to(dev)
    # random rank-512 LoRA (A, B) for all Pusa targets, generated on the GPU then moved to CPU like a loaded file
    tensors = {}
    for name, mod in dit.named_modules():
        if isinstance(mod, torch.nn.Linear) and any(name.endswith(t) for t in (
                "to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2")) and name.startswith("blocks."):
            tensors[name] = (torch.randn(512, mod.in_features, device=dev, dtype=torch.bfloat16).mul_(0.01).cpu(),
                             torch.randn(mod.out_features, 512, device=dev, dtype=torch.bfloat16).mul_(0.01).cpu())
    lora = parse_lora(named_lora_state_dict(tensors, "pusa"), "random-rank512")
    t0 = time.perf_counter()
    merged = MergedLoras(dit, [lora], compute_device=dev)
    snapshot = time.perf_counter() - t0
    layout = ModelLayout(Path("."), "benchmark", [Path(".")], Path("."), Path("."), Path("."),
                         replace(WAN21, text_len=TINY_TEXT_LEN), None, "random 14B")

    # a text encoder with the real output width (4096) is needed by the DiT: project the tiny T5's output
    class Wide(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.proj = inner, torch.nn.Linear(inner.config.d_model, 4096).to(dev)

        def forward(self, ids, mask):
            out = self.inner(ids, mask)
            out.last_hidden_state = self.proj(out.last_hidden_state)
            return out

    pipe = PusaPipeline(layout, [dit], vae, Wide(t5), tok, dev, torch.bfloat16, [merged], ["random-rank512"])
    settings = {"prompt": "a red ball bounces", "size": "832x480", "frames": 81, "steps": steps, "seed": 0,
                "task": "t2v"}
    res = run_requests(pipe, settings, repeats=1)
    return {"config": "full-14B-random", "device": torch.cuda.get_device_name(0), "dtype": "bfloat16",
            "dit_params_m": round(sum(p.numel() for p in dit.parameters()) / 1e6, 1), "size": "832x480",
            "frames": 81, "tokens": 21 * 30 * 52, "steps": steps, "cfg": 5.0, "lora_rank": 512,
            "lora_snapshot_s": round(snapshot, 3), **res}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="tiny,mid" + (",full" if torch.cuda.is_available() else ""))
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    results = []
    for name in args.configs.split(","):
        if name == "tiny":
            results.append(bench_from_disk("tiny", {}, 8, "64x64", 9, args.steps))
        elif name == "mid":
            results.append(bench_from_disk("mid", dict(num_attention_heads=8, attention_head_dim=64, ffn_dim=1536,
                                                       num_layers=8, text_dim=32, freq_dim=256), 32, "256x256", 17,
                                           args.steps))
        elif name == "full":
            if not torch.cuda.is_available():
                results.append({"config": "full-14B-random", "skipped": "no CUDA GPU on this machine"})
            else:
                results.append(bench_full(args.steps))
        else:
            print(f"unknown config {name!r}; expected tiny, mid or full", file=sys.stderr)
            return 2
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
