"""The one-command pusa-tiny build runs every stage end to end (at toy step counts) and resumes.

The real build takes about an hour; this runs the same code path with a few steps per stage, so a
change that breaks the build (a renamed option, a stage that no longer writes its output, a model
folder the engine cannot load) fails here rather than when someone rebuilds the weights.
"""

from __future__ import annotations

import json

import pytest

from pusa.training import build_tiny, tiny
from pusa.training.trainer import LORA_FILE


def test_build_runs_every_stage_and_a_rerun_skips_them(tmp_path, monkeypatch):
    import torch
    from diffusers import AutoencoderKLWan

    from pusa.pipeline import PusaPipeline
    from pusa.settings import GenerationSettings
    from pusa.training.evaluate import EvalConfig

    # the recorded evaluation, smaller (the real one is recomputed by test_pusa_tiny.py)
    monkeypatch.setattr(build_tiny, "recorded_eval_config", lambda model: EvalConfig(
        model=str(model), alphas=(1.4,), multipliers=(0.2,), tasks=("i2v",), cases=1, steps=2, ood_cases=1,
        ood_kinds=("photo",), vae_sizes=((64, 64),), vae_cases=1))

    work, out = tmp_path / "work", tmp_path / "pusa-tiny"
    args = ["--work", str(work), "--out", str(out), "--seed", "3", "--clips", "3", "--t2v-steps", "2",
            "--vta-steps", "2", "--vae-steps", *(["1"] * len(tiny.VAE_PHASES)),
            "--decoder-steps", *(["2"] * len(tiny.DECODER_PHASES))]
    # the two branches after the VAE stage, as two processes would run them side by side
    assert build_tiny.main(args + ["--only", "decoder"]) == 0
    assert (work / "vae" / "config.json").is_file() and not (work / "data").exists() and not out.exists()
    assert build_tiny.main(args + ["--only", "dit"]) == 0
    assert (work / "vta" / LORA_FILE).is_file() and not out.exists()
    # the T2V base trains on shapes on black only (its own data and latent cache), the LoRA on the scene mix
    base_rows = [json.loads(r) for r in (work / "data_t2v" / "metadata.jsonl").read_text().splitlines()]
    assert len(base_rows) == 3 and {r["background"] for r in base_rows} == {"black"}
    assert list((work / "data_t2v" / ".pusa_cache").iterdir()) and list((work / "data" / ".pusa_cache").iterdir())
    stage_outputs = (work / "vae_base" / "config.json", work / "vae" / "config.json",
                     work / "t2v" / "transformer" / "config.json", work / "vta" / LORA_FILE)
    stamps = {p: p.stat().st_mtime_ns for p in stage_outputs}
    assert build_tiny.main(args) == 0  # writes the model from both branches, training nothing again

    meta = json.loads((out / "pusa.json").read_text())
    assert meta["label"] == build_tiny.LABEL and meta["lora"] == build_tiny.LORA_NAME
    assert (out / build_tiny.LORA_NAME).is_file() and not (out / ".pusa_cache").exists()
    for part in ("transformer", "vae"):  # no build-machine path in the shipped configs
        assert "_name_or_path" not in json.loads((out / part / "config.json").read_text())
    recorded = json.loads((out / build_tiny.EVAL_FILE).read_text())  # measured on the written model
    assert recorded["rows"][0]["alpha"] == 1.4 and "i2v.cond_psnr" in recorded["rows"][0]
    assert "photo.bg_psnr" in recorded["ood_rows"][0] and "fields" in recorded["vae_psnr"]["64x64"]
    shipped = AutoencoderKLWan.from_pretrained(str(out / "vae")).state_dict()
    base = AutoencoderKLWan.from_pretrained(str(work / "vae_base")).state_dict()
    sharp = AutoencoderKLWan.from_pretrained(str(work / "vae")).state_dict()
    assert all(torch.equal(shipped[k], sharp[k]) for k in sharp), "the model ships the sharpened decoder"
    assert all(torch.equal(shipped[k], base[k]) for k in base if k.startswith(("encoder.", "quant_conv."))), \
        "the DiT's latent space: the encoder it was trained on"
    assert any(not torch.equal(shipped[k], base[k]) for k in base if k.startswith("decoder."))
    assert json.loads((out / "vae" / "config.json").read_text())["latents_mean"] == \
        json.loads((work / "vae_base" / "config.json").read_text())["latents_mean"]

    assert build_tiny.main(args) == 0  # resumable: every stage's output exists, nothing is retrained
    for p, stamp in stamps.items():
        assert p.stat().st_mtime_ns == stamp, p

    pipe = PusaPipeline.from_pretrained(out, device="cpu")
    assert pipe.label == build_tiny.LABEL and pipe.lora_paths
    s = GenerationSettings.parse({"prompt": "a red circle moving right fast", "task": "t2v", "steps": 2, "seed": 0})
    assert pipe.generate(s).frames.shape == (33, 64, 64, 3)


def test_wrong_number_of_vae_phase_steps_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_tiny.main(["--work", str(tmp_path / "w"), "--out", str(tmp_path / "o"), "--vae-steps", "1", "2"])
    assert exit_info.value.code == 2
    assert f"give {len(tiny.VAE_PHASES)} numbers" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_new_caption_words_keep_the_ids_and_features_of_the_first_vocabulary():
    tok = tiny.make_tokenizer()
    assert len(tok) > tiny.FIRST_VOCAB  # the scene clips' camera words were appended
    first = tiny.make_text_encoder(tiny.FIRST_VOCAB, 0).state_dict()
    grown = tiny.make_text_encoder(len(tok), 0).state_dict()
    for name, value in first.items():  # a DiT trained on the first encoder reads the same features
        assert (grown[name][:value.shape[0]] == value).all(), name
    assert grown["shared.weight"][tiny.FIRST_VOCAB:].std() > 0.1 * first["shared.weight"].std()


def test_vae_fine_tune_starts_from_the_given_weights_and_keeps_its_latent_space(monkeypatch):
    import torch

    monkeypatch.setattr(tiny, "VAE_PHASES", tuple(dict(p, crop=16, batch=2) for p in tiny.VAE_PHASES))
    init = tiny.make_vae(5)
    init.register_to_config(latents_mean=[0.5] * 16, latents_std=[2.0] * 16)
    before = {k: v.clone() for k, v in init.state_dict().items()}
    vae = tiny.build_vae(0, phase_steps=(1,) + (0,) * (len(tiny.VAE_PHASES) - 1), init=init)
    assert vae is init and list(vae.config.latents_mean) == [0.5] * 16 and list(vae.config.latents_std) == [2.0] * 16
    changed = [k for k, v in vae.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "one fine-tuning step changes the weights"


def test_decoder_phases_change_no_latent(monkeypatch):
    """The DiT stages train on the encoder's latents while the decoder phases run: those must not move."""
    import torch

    monkeypatch.setattr(tiny, "DECODER_PHASES", tuple(dict(p, crop=16, batch=2) for p in tiny.DECODER_PHASES))
    vae = tiny.make_vae(5).eval()
    clip = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        latents, decoded = vae.encode(clip).latent_dist.mode(), vae.decode(vae.encode(clip).latent_dist.mode()).sample
    tiny.sharpen_decoder(vae, 0, phase_steps=(2,) + (0,) * (len(tiny.DECODER_PHASES) - 1))
    with torch.no_grad():
        assert torch.equal(vae.encode(clip).latent_dist.mode(), latents)
        assert not torch.allclose(vae.decode(latents).sample, decoded), "the decoder was trained"
