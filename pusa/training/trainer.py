"""`pusa train`: VTA fine-tuning of a Wan DiT (LoRA as Pusa, or full), with accelerate.

The loop is deliberately plain: cached latents and contexts in, per-frame sigmas drawn
(:mod:`pusa.training.vta`), one weighted MSE out. Everything else is plumbing users expect:

* ``accelerate launch -m pusa.training.cli train ...`` runs it on several GPUs; DDP, DeepSpeed
  (ZeRO-2 as Pusa V1) or FSDP come from accelerate's own config file, not from flags here.
* Randomness of step ``k`` (batch indices, noise, sigmas, caption dropout) comes from a generator
  seeded with ``(seed, k, process)``, so a run resumed from a checkpoint continues with exactly the
  batches an uninterrupted run would have used.
* Checkpoints are ``accelerator.save_state`` folders (model, optimizer, LR schedule) plus a
  ``trainer.json`` with the step; ``--resume`` picks the latest one.
* The exported LoRA has the PEFT scale ``lora_alpha / rank`` folded into ``lora_B``, so that
  "LoRA alpha 1.0" in the engine means exactly the trained strength (Pusa files have scale 1).
* Sample videos are made by the real engine (:class:`pusa.pipeline.PusaPipeline`) from the LoRA
  exported at that step, so what you watch is what ``pusa generate --lora`` will produce.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from pusa.atomic import atomic_file
from pusa.errors import InputError
from pusa.loading.lora import PUSA_TARGETS
from pusa.training.vta import TimestepTable, noisy_input, sample_frame_sigmas, token_timesteps, vta_loss

log = logging.getLogger(__name__)

LORA_FILE = "pusa_lora.safetensors"


@dataclass
class TrainConfig:
    """Everything that decides a training run (saved as ``train_config.json`` in the output folder)."""

    model: str
    data: str
    output: str
    mode: str = "lora"  # "lora" or "full"
    lora_rank: int = 16
    lora_alpha: float = 16.0  # PEFT lora_alpha; scale = lora_alpha / rank (Pusa V1: 512 / 512 = 1)
    targets: tuple[str, ...] = PUSA_TARGETS
    timestep_mode: str = "vta"  # "vta" (per-frame, Pusa) or "uniform" (one per sample: plain T2V)
    shift: float = 5.0
    weighting: str = "bell"
    cond_prob: float = 0.0
    caption_dropout: float = 0.1
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 20
    lr_schedule: str = "constant"  # "constant" or "cosine" (decays to 10%)
    steps: int = 1000
    batch_size: int = 1
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"  # "no", "bf16" or "fp16"
    gradient_checkpointing: bool = False
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    cache_dir: str | None = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    sample_every: int = 0
    sample_prompts: tuple[str, ...] = ()
    sample_steps: int = 10
    seed: int = 0
    resume: bool = False
    progress: bool = True
    negative_prompts: tuple[str, ...] = field(default_factory=lambda: ("",))

    def validate(self) -> None:
        """Reject impossible combinations before any weight is loaded."""
        checks = [
            (self.mode in ("lora", "full"), f"mode must be lora or full, got {self.mode!r}"),
            (self.timestep_mode in ("vta", "uniform"), f"timestep mode must be vta or uniform, got {self.timestep_mode!r}"),
            (self.lora_rank >= 1, "lora rank must be >= 1"),
            (self.steps >= 1, "steps must be >= 1"),
            (self.batch_size >= 1 and self.grad_accum >= 1, "batch size and grad accumulation must be >= 1"),
            (0.0 <= self.cond_prob <= 1.0 and 0.0 <= self.caption_dropout <= 1.0, "probabilities must be in [0, 1]"),
            (self.mixed_precision in ("no", "bf16", "fp16"), "mixed precision must be no, bf16 or fp16"),
            (self.lr_schedule in ("constant", "cosine"), "lr schedule must be constant or cosine"),
            (self.sample_every == 0 or bool(self.sample_prompts), "sample_every needs at least one sample prompt"),
        ]
        bad = [msg for ok, msg in checks if not ok]
        if bad:
            raise InputError("; ".join(bad))


@dataclass
class TrainResult:
    """What a run produced: the step reached, recent losses, and the exported files."""

    step: int
    losses: list[float]
    lora: Path | None
    transformer: Path | None
    seconds: float


def _step_generator(seed: int, step: int, process: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 7919 + process)


def latest_checkpoint(output: Path) -> Path | None:
    """Newest ``checkpoints/step-N`` folder that finished writing (has trainer.json)."""
    ckpts = [p for p in (output / "checkpoints").glob("step-*") if (p / "trainer.json").is_file()]
    return max(ckpts, key=lambda p: int(p.name.split("-")[1])) if ckpts else None


def lora_state_dict(transformer: torch.nn.Module, scale: float,
                    full_state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """PEFT LoRA weights in diffusers names (``blocks.0.attn1.to_q.lora_A.weight``), scale folded into B.

    ``full_state``: the model's gathered state dict, when the live parameters are only this process's
    shard (FSDP, DeepSpeed ZeRO-3).
    """
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(transformer, state_dict=full_state)
    out = {}
    for k, v in state.items():
        v = v.detach().float().cpu()
        if ".lora_B." in k:
            v = v * scale
        out[k] = v.contiguous()
    return out


def export_lora(transformer: torch.nn.Module, path: Path, cfg: TrainConfig, step: int,
                full_state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write the LoRA as safetensors, loadable by ``pusa generate --lora`` at alpha 1 = trained strength."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = lora_state_dict(transformer, cfg.lora_alpha / cfg.lora_rank, full_state)
    meta = {"format": "pusa-vta-lora", "rank": str(cfg.lora_rank), "trained_lora_alpha": str(cfg.lora_alpha),
            "scale_folded_into_B": "true", "step": str(step), "timestep_mode": cfg.timestep_mode}
    with atomic_file(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return path


def _lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    def f(step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
        if cfg.lr_schedule == "cosine":
            progress = min(1.0, step / max(1, cfg.steps))
            return warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        return warm
    return f


def _full_model_folder(model_dir: Path, transformer_dir: Path, target: Path) -> Path:
    """A model folder sharing every component of ``model_dir`` except a newly trained transformer."""
    target.mkdir(parents=True, exist_ok=True)
    for item in model_dir.iterdir():
        if item.name in ("transformer", "pusa.json") or (target / item.name).exists():
            continue
        (target / item.name).symlink_to(item.resolve())
    if (target / "transformer").is_symlink() or (target / "transformer").exists():
        if (target / "transformer").is_symlink():
            (target / "transformer").unlink()
        else:
            shutil.rmtree(target / "transformer")
    (target / "transformer").symlink_to(transformer_dir.resolve())
    if (model_dir / "pusa.json").is_file():
        meta = json.loads((model_dir / "pusa.json").read_text())
        meta.pop("lora", None)
        (target / "pusa.json").write_text(json.dumps(meta))
    return target


def export_weights(model: torch.nn.Module, full_state: dict[str, torch.Tensor], cfg: TrainConfig, step: int,
                   folder: Path) -> Path:
    """Write the trained weights into ``folder``: the LoRA file, or a ``transformer/`` model folder.

    The weights come from ``full_state`` (``accelerator.get_state_dict``), not from ``model``'s live
    parameters: under FSDP or DeepSpeed ZeRO-3 those are only this process's shard. A full
    transformer is rebuilt on the meta device and takes that state's tensors, so no randomly
    initialised second model is allocated before saving (diffusers' own sharded safetensors).
    """
    if cfg.mode == "lora":
        return export_lora(model, folder / LORA_FILE, cfg, step, full_state)
    from accelerate import init_empty_weights

    with init_empty_weights():
        fresh = type(model).from_config(model.config)
    fresh.load_state_dict({k: v.float() for k, v in full_state.items()}, assign=True)
    target = folder / "transformer"
    fresh.save_pretrained(str(target), safe_serialization=True)
    return target


def write_samples(cfg: TrainConfig, step: int, model: torch.nn.Module, full_state: dict[str, torch.Tensor],
                  output: Path) -> list[Path]:
    """Export this step's weights next to its samples and render the sample prompts from them with
    the engine, so a sample is exactly what ``pusa generate`` makes; returns the mp4 paths."""
    from pusa.media import write_mp4
    from pusa.pipeline import PusaPipeline
    from pusa.settings import GenerationSettings

    folder = output / "samples" / f"step-{step:07d}"
    weights = export_weights(model, full_state, cfg, step, folder)
    if cfg.mode == "lora":
        pipe = PusaPipeline.from_pretrained(cfg.model, lora=weights, use_default_lora=False, device="cpu")
    else:
        model_dir = _full_model_folder(Path(cfg.model), weights, folder / "model")
        pipe = PusaPipeline.from_pretrained(model_dir, use_default_lora=False, device="cpu")
    paths = []
    for i, prompt in enumerate(cfg.sample_prompts):
        settings = GenerationSettings.parse({"prompt": prompt, "steps": cfg.sample_steps, "seed": cfg.seed + i,
                                             "lora_alpha": 1.0, "width": cfg.width, "height": cfg.height,
                                             "frames": cfg.frames})
        result = pipe.generate(settings)
        paths.append(write_mp4(result.frames, folder / f"sample-{i}.mp4", fps=result.settings.fps))
    log.info("step %d: wrote %d sample video(s) to %s", step, len(paths), folder)
    return paths


def make_accelerator(cfg: TrainConfig):
    """The run's ``Accelerator``; on CUDA-less machines launched with several processes, DDP over gloo.

    accelerate only picks its multi-CPU (gloo) mode when asked for the CPU; without it, ``torchrun
    --nproc_per_node 2`` on a CPU box silently starts two independent single-process runs that
    overwrite each other's checkpoints. Asking for the CPU there makes it one real DDP run, and a
    launch that still does not match ``WORLD_SIZE`` is refused instead of corrupting the output.
    """
    from accelerate import Accelerator

    world = int(os.environ.get("WORLD_SIZE", "1"))
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
                              cpu=world > 1 and not torch.cuda.is_available())
    if accelerator.num_processes != world:
        raise InputError(f"launch: WORLD_SIZE is {world} but accelerate set up {accelerator.num_processes} "
                         f"process(es) ({accelerator.distributed_type}); use `accelerate launch` or `torchrun`")
    return accelerator


def train(cfg: TrainConfig, *, on_step: Callable[[int, float], None] | None = None) -> TrainResult:
    """Run (or resume) one training job; returns where the exported weights are."""
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    from pusa.loading.components import load_transformer
    from pusa.loading.layout import detect_layout
    from pusa.training.data import LatentCache

    cfg.validate()
    started = time.time()
    output = Path(cfg.output).expanduser()
    output.mkdir(parents=True, exist_ok=True)
    layout = detect_layout(cfg.model)
    if layout.is_wan22:
        raise InputError("model: training a Wan2.2 (two-expert) folder is not supported; train each expert's "
                         "folder as a Wan2.1-style model")
    cfg.width = cfg.width or layout.family.defaults.width
    cfg.height = cfg.height or layout.family.defaults.height
    cfg.frames = cfg.frames or layout.family.defaults.frames
    if cfg.width % 16 or cfg.height % 16 or (cfg.frames - 1) % 4:
        raise InputError(f"training size {cfg.width}x{cfg.height}x{cfg.frames}: width/height must be multiples "
                         f"of 16 and frames 4k+1")

    accelerator = make_accelerator(cfg)
    set_seed(cfg.seed)
    with accelerator.main_process_first():
        cache = LatentCache.build(cfg.model, cfg.data, width=cfg.width, height=cfg.height, frames=cfg.frames,
                                  cache_dir=cfg.cache_dir, negative_prompts=tuple(cfg.negative_prompts))
    if accelerator.is_main_process:
        (output / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2, default=str))

    transformer = load_transformer(layout.transformers[0], layout.kind != "diffusers", torch.float32)
    if cfg.mode == "lora":
        from peft import LoraConfig

        transformer.requires_grad_(False)
        if cfg.mixed_precision == "bf16":  # frozen base in bf16 halves its memory; LoRA stays fp32
            transformer.to(torch.bfloat16)
        transformer.add_adapter(LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, init_lora_weights=True,
                                           target_modules=list(cfg.targets)))
        for n, p in transformer.named_parameters():
            if "lora_" in n:
                p.data = p.data.float()
                p.requires_grad_(True)
    else:
        transformer.requires_grad_(True)
    if cfg.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    transformer.train()
    params = [p for p in transformer.parameters() if p.requires_grad]
    log.info("training %s: %.2fM trainable parameters, %d clips", cfg.mode, sum(p.numel() for p in params) / 1e6,
             len(cache))
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg))
    transformer, optimizer, scheduler = accelerator.prepare(transformer, optimizer, scheduler)

    step = 0
    if cfg.resume:
        ckpt = latest_checkpoint(output)
        if ckpt is not None:
            accelerator.load_state(str(ckpt))
            step = int(json.loads((ckpt / "trainer.json").read_text())["step"])
            log.info("resumed from %s at step %d", ckpt, step)
        else:
            log.info("no checkpoint in %s: starting from step 0", output / "checkpoints")

    table = TimestepTable.create(cfg.shift, cfg.weighting)
    sample_latent, _ = cache.get(0)
    _, n_frames, lat_h, lat_w = sample_latent.shape
    tpf = layout.family.tokens_per_frame(lat_h, lat_w)
    device = accelerator.device
    losses: list[float] = []
    bar = tqdm(total=cfg.steps, initial=step, desc="train", disable=not (cfg.progress and accelerator.is_main_process))
    while step < cfg.steps:
        for _micro in range(cfg.grad_accum):
            g = _step_generator(cfg.seed, step * cfg.grad_accum + _micro, accelerator.process_index)
            idx = torch.randint(0, len(cache), (cfg.batch_size,), generator=g).tolist()
            items = [cache.get(i) for i in idx]
            x0 = torch.stack([it[0] for it in items])
            ctx = torch.stack([it[1] for it in items])
            drop = torch.rand(cfg.batch_size, generator=g) < cfg.caption_dropout
            for b in torch.nonzero(drop).flatten().tolist():
                j = int(torch.randint(0, cache.null_contexts.shape[0], (), generator=g))
                ctx[b] = cache.null_contexts[j].float()
            noise = torch.randn(x0.shape, generator=g)
            sigma = sample_frame_sigmas(table, cfg.batch_size, n_frames, mode=cfg.timestep_mode,
                                        cond_prob=cfg.cond_prob, generator=g)
            x_s = noisy_input(x0, noise, sigma)
            timestep = token_timesteps(sigma, tpf)
            with accelerator.accumulate(transformer), accelerator.autocast():
                pred = transformer(hidden_states=x_s.to(device), timestep=timestep.to(device),
                                   encoder_hidden_states=ctx.to(device), return_dict=False)[0]
                loss = vta_loss(pred, x0.to(device), noise.to(device), sigma.to(device), table.to_device(device))
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
        step += 1
        value = float(accelerator.gather(loss.detach().reshape(1)).mean())
        losses.append(value)
        bar.update(1)
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}")
        if on_step is not None:
            on_step(step, value)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            _save_checkpoint(accelerator, output, step, cfg.keep_checkpoints)
        if cfg.sample_every and step % cfg.sample_every == 0:
            full_state = accelerator.get_state_dict(transformer)  # a collective: every process calls it
            if accelerator.is_main_process:
                write_samples(cfg, step, accelerator.unwrap_model(transformer), full_state, output)
            del full_state
            accelerator.wait_for_everyone()
    bar.close()

    accelerator.wait_for_everyone()
    lora_path = transformer_path = None
    full_state = accelerator.get_state_dict(transformer)
    if accelerator.is_main_process:
        weights = export_weights(accelerator.unwrap_model(transformer), full_state, cfg, step, output)
        if cfg.mode == "lora":
            lora_path = weights
        else:
            transformer_path = weights
        log.info("exported %s to %s", "LoRA" if cfg.mode == "lora" else "transformer", weights)
    del full_state
    _save_checkpoint(accelerator, output, step, cfg.keep_checkpoints)
    return TrainResult(step, losses, lora_path, transformer_path, time.time() - started)


def _save_checkpoint(accelerator, output: Path, step: int, keep: int) -> None:
    """``accelerator.save_state`` plus the step; older checkpoints beyond ``keep`` are removed."""
    folder = output / "checkpoints" / f"step-{step}"
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        (folder / "trainer.json").write_text(json.dumps({"step": step, "processes": accelerator.num_processes}))
        ckpts = sorted((p for p in (output / "checkpoints").glob("step-*") if (p / "trainer.json").is_file()),
                       key=lambda p: int(p.name.split("-")[1]))
        for old in ckpts[:-max(1, keep)]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
