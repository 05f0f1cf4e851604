"""`pusa train` on tiny data: the loss goes down, the LoRA loads in the engine at the trained strength,
resume continues exactly, full fine-tuning exports a transformer, the text context matches the engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pusa.errors import InputError
from tests.training.conftest import CLIP_F, CLIP_H, CLIP_W
from pusa.text import encode_prompts
from pusa.training.data import LatentCache
from pusa.training.trainer import LORA_FILE, latest_checkpoint, train
from pusa.training.vta import TimestepTable, noisy_input, sample_frame_sigmas, token_timesteps, vta_loss


def _fixed_batch_loss(transformer, cache: LatentCache, seed: int = 11) -> float:
    """The VTA loss of every cached clip at fixed noise and sigmas (so two models compare fairly)."""
    table = TimestepTable.create()
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    with torch.no_grad():
        for i in range(len(cache)):
            x0, ctx = cache.get(i)
            x0, ctx = x0[None], ctx[None]
            for _ in range(3):
                noise = torch.randn(x0.shape, generator=g)
                sigma = sample_frame_sigmas(table, 1, x0.shape[2], mode="vta", cond_prob=0.0, generator=g)
                tpf = (x0.shape[3] // 2) * (x0.shape[4] // 2)
                pred = transformer(hidden_states=noisy_input(x0, noise, sigma), timestep=token_timesteps(sigma, tpf),
                                   encoder_hidden_states=ctx, return_dict=False)[0]
                total += float(vta_loss(pred, x0, noise, sigma, table))
    return total


def test_training_lowers_the_loss_and_the_engine_loads_the_lora(train_config, tiny_diffusers):
    from pusa.loading.components import load_transformer
    from pusa.loading.lora import MergedLoras, load_lora
    from pusa.pipeline import PusaPipeline
    from pusa.settings import GenerationSettings

    cfg = train_config(steps=120, learning_rate=1e-2, lora_rank=8, lora_alpha=8.0)
    result = train(cfg)
    assert result.lora == Path(cfg.output) / LORA_FILE and result.lora.is_file()
    assert result.step == 120 and len(result.losses) == 120

    cache = LatentCache.build(cfg.model, cfg.data, width=cfg.width, height=cfg.height, frames=cfg.frames,
                              cache_dir=cfg.cache_dir)
    base = load_transformer(Path(tiny_diffusers) / "transformer", False, torch.float32)
    before = _fixed_batch_loss(base, cache)
    merged = MergedLoras(base, [load_lora(result.lora)])
    merged.set_scales([1.0])  # alpha 1.0 in the engine = the trained strength
    after = _fixed_batch_loss(base, cache)
    assert after < 0.95 * before, (before, after)  # measured: 20.38 -> 18.15 (0.89)

    pipe = PusaPipeline.from_pretrained(tiny_diffusers, lora=result.lora, device="cpu")
    frames = {}
    for alpha in (0.0, 1.0):
        s = GenerationSettings.parse({"prompt": "a red circle moving right fast", "task": "t2v", "steps": 2,
                                      "cfg": 1.0, "seed": 1, "lora_alpha": alpha, "width": 32, "height": 32,
                                      "frames": 5})
        frames[alpha] = pipe.generate(s).frames
    assert frames[0.0].shape == (5, 32, 32, 3)
    assert not (frames[0.0] == frames[1.0]).all()


def test_exported_lora_at_alpha_one_equals_the_trained_peft_model(train_config, tiny_diffusers):
    """Folding lora_alpha / rank into B must make the engine's merge reproduce PEFT's forward."""
    from peft import LoraConfig

    from pusa.loading.components import load_transformer
    from pusa.loading.lora import MergedLoras, load_lora
    from pusa.training.trainer import export_lora

    cfg = train_config(lora_rank=4, lora_alpha=12.0)
    model = load_transformer(Path(tiny_diffusers) / "transformer", False, torch.float32)
    model.add_adapter(LoraConfig(r=4, lora_alpha=12.0, target_modules=list(cfg.targets), init_lora_weights=True))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    x = torch.randn(1, 16, 2, 4, 4, generator=g)
    ctx = torch.randn(1, 8, model.config.text_dim, generator=g)
    t = torch.tensor([[300.0] * 4 + [800.0] * 4])
    with torch.no_grad():
        want = model(hidden_states=x, timestep=t, encoder_hidden_states=ctx, return_dict=False)[0]
    path = export_lora(model, Path(cfg.output) / "x.safetensors", cfg, 0)
    plain = load_transformer(Path(tiny_diffusers) / "transformer", False, torch.float32)
    MergedLoras(plain, [load_lora(path)]).set_scales([1.0])
    with torch.no_grad():
        got = plain(hidden_states=x, timestep=t, encoder_hidden_states=ctx, return_dict=False)[0]
    assert torch.allclose(got, want, atol=1e-5)


def test_resume_continues_exactly_where_an_uninterrupted_run_would_be(train_config, tmp_path):
    from safetensors.torch import load_file

    straight = train(train_config(steps=4, output=str(tmp_path / "straight")))
    first = train(train_config(steps=2, output=str(tmp_path / "resumed"), checkpoint_every=1))
    assert latest_checkpoint(tmp_path / "resumed").name == "step-2"
    resumed = train(train_config(steps=4, output=str(tmp_path / "resumed"), resume=True))
    assert first.step == 2 and resumed.step == 4 and len(resumed.losses) == 2
    assert resumed.losses == pytest.approx(straight.losses[2:], rel=1e-4, abs=1e-6)
    a, b = load_file(straight.lora), load_file(resumed.lora)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def _sample_videos(output: Path, step: int) -> list[Path]:
    from pusa.media import video_info

    videos = sorted((output / "samples" / f"step-{step:07d}").glob("sample-*.mp4"))
    for v in videos:
        info = video_info(v)
        assert (info["frames"], info["width"], info["height"]) == (CLIP_F, CLIP_W, CLIP_H), info
    return videos


def test_lora_run_renders_sample_videos_through_the_engine(train_config):
    cfg = train_config(steps=2, sample_every=1, sample_prompts=("a red circle moving right fast", "a blue square"),
                       sample_steps=2)
    train(cfg)
    for step in (1, 2):
        assert len(_sample_videos(Path(cfg.output), step)) == 2
        assert (Path(cfg.output) / "samples" / f"step-{step:07d}" / LORA_FILE).is_file()


def test_full_mode_exports_a_loadable_transformer(train_config, tiny_diffusers):
    from diffusers import WanTransformer3DModel

    cfg = train_config(mode="full", steps=2, timestep_mode="uniform", sample_every=2,
                       sample_prompts=("a red circle moving right fast",), sample_steps=2)
    result = train(cfg)
    assert result.lora is None and (result.transformer / "config.json").is_file()
    assert len(_sample_videos(Path(cfg.output), 2)) == 1
    trained = WanTransformer3DModel.from_pretrained(str(result.transformer))
    orig = WanTransformer3DModel.from_pretrained(str(Path(tiny_diffusers) / "transformer"))
    diffs = [float((a - b).abs().max()) for a, b in zip(trained.parameters(), orig.parameters())]
    assert max(diffs) > 0


def test_training_text_context_matches_the_engine(tiny_pipe):
    prompts = ["a  small red circle moving   right fast", "x"]
    ours, lengths = encode_prompts(tiny_pipe.tokenizer, tiny_pipe.text_encoder, prompts, tiny_pipe.family.text_len)
    theirs = tiny_pipe.encode_text(prompts).float()
    assert torch.equal(ours, theirs)
    assert int(lengths[1]) < int(lengths[0])


def test_bad_config_is_an_input_error(train_config):
    with pytest.raises(InputError, match="timestep mode"):
        train(train_config(timestep_mode="sometimes"))
    with pytest.raises(InputError, match="sample prompt"):
        train(train_config(sample_every=2))
