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


def test_build_runs_every_stage_and_a_rerun_skips_them(tmp_path):
    from pusa.pipeline import PusaPipeline
    from pusa.settings import GenerationSettings

    work, out = tmp_path / "work", tmp_path / "pusa-tiny"
    args = ["--work", str(work), "--out", str(out), "--seed", "3", "--clips", "3", "--t2v-steps", "2",
            "--vta-steps", "2", "--vae-steps", *(["1"] * len(tiny.VAE_PHASES))]
    assert build_tiny.main(args) == 0

    meta = json.loads((out / "pusa.json").read_text())
    assert meta["label"] == build_tiny.LABEL and meta["lora"] == build_tiny.LORA_NAME
    assert (out / build_tiny.LORA_NAME).is_file() and not (out / ".pusa_cache").exists()
    for part in ("transformer", "vae"):  # no build-machine path in the shipped configs
        assert "_name_or_path" not in json.loads((out / part / "config.json").read_text())
    stage_outputs = (work / "vae" / "config.json", work / "t2v" / "transformer" / "config.json",
                     work / "vta" / LORA_FILE)
    stamps = {p: p.stat().st_mtime_ns for p in stage_outputs}

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
    vae = tiny.build_vae(0, phase_steps=(0, 1, 0, 0, 0), init=init)
    assert vae is init and list(vae.config.latents_mean) == [0.5] * 16 and list(vae.config.latents_std) == [2.0] * 16
    changed = [k for k, v in vae.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "one fine-tuning step changes the weights"
