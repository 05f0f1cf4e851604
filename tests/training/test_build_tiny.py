"""The one-command pusa-tiny build runs every stage end to end (at toy step counts) and resumes.

The real build takes about two hours; this runs the same code path with a few steps per stage, so a
change that breaks the build (a renamed option, a stage that no longer writes its output, a model
folder the engine cannot load) fails here rather than when someone rebuilds the weights.
"""

from __future__ import annotations

import fcntl
import json

import pytest
import torch

from pusa.training import build_tiny, tiny
from pusa.training.trainer import LORA_FILE


def _toy_teacher(folder):
    """A pusa-tiny-shaped folder standing in for v1 (stage 0): a plain-block VAE with latent statistics, a DiT."""
    vae = tiny.make_vae(4)
    vae.register_to_config(latents_mean=[0.1] * 16, latents_std=[0.7] * 16)
    return tiny.write_base_model(folder, vae, seed=3)


def test_build_runs_every_stage_and_a_rerun_skips_them(tmp_path, monkeypatch):
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    from pusa.pipeline import PusaPipeline
    from pusa.settings import GenerationSettings
    from pusa.training.evaluate import EvalConfig

    # the recorded evaluation, smaller (the real one is recomputed by test_pusa_tiny.py)
    monkeypatch.setattr(build_tiny, "recorded_eval_config", lambda model: EvalConfig(
        model=str(model), alphas=(1.4,), multipliers=(0.2,), tasks=("i2v",), cases=1, steps=2, ood_cases=1,
        ood_kinds=("photo",), vae_sizes=((64, 64),), vae_cases=1))
    monkeypatch.setattr(tiny, "VAE_BANK_CLIPS", 2)  # the teacher's shapes on black, rendered for 1 step a phase
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    seen = {}
    build_vae, sharpen_decoder = tiny.build_vae, tiny.sharpen_decoder

    def locked_build_vae(*args, **kwargs):  # stages 0-1 run under the work folder's lock
        with open(tmp_path / "work" / build_tiny.SHARED_STAGES_LOCK) as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        seen["prefix threads"] = torch.get_num_threads()
        return build_vae(*args, **kwargs)

    def counted_sharpen(*args, **kwargs):
        seen["decoder threads"] = torch.get_num_threads()
        return sharpen_decoder(*args, **kwargs)

    monkeypatch.setattr(tiny, "build_vae", locked_build_vae)
    monkeypatch.setattr(tiny, "sharpen_decoder", counted_sharpen)
    threads = torch.get_num_threads()

    work, out, teacher = tmp_path / "work", tmp_path / "pusa-tiny", _toy_teacher(tmp_path / "teacher")
    args = ["--work", str(work), "--out", str(out), "--seed", "3", "--clips", "3", "--teacher", str(teacher),
            "--vta-steps", "2", "--vae-steps", *(["1"] * len(tiny.VAE_PHASES)),
            "--decoder-steps", *(["2"] * len(tiny.DECODER_PHASES))]
    # the two branches after the VAE stage, as two processes would run them side by side
    assert build_tiny.main(args + ["--only", "decoder"]) == 0
    assert (work / "vae" / "config.json").is_file() and not (work / "data").exists() and not out.exists()
    # the shared stages had every core, the branch half of them (beside the other), and the count is back
    assert seen == {"prefix threads": threads, "decoder threads": max(1, threads // 2)}
    assert torch.get_num_threads() == threads
    assert build_tiny.main(args + ["--only", "dit"]) == 0
    assert (work / "vta" / LORA_FILE).is_file() and not out.exists()
    assert list((work / "data" / ".pusa_cache").iterdir()) and not (work / "teacher").exists()
    stage_outputs = (work / "vae_base" / "config.json", work / "vae" / "config.json",
                     work / "base_t2v" / "transformer" / "config.json", work / "vta" / LORA_FILE)
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
    shipped_config = json.loads((out / "vae" / "config.json").read_text())
    assert shipped_config["is_residual"] and shipped_config["latents_mean"] == [0.1] * 16, \
        "the residual VAE in the teacher's normalised latent space"
    dit, teacher_dit = (WanTransformer3DModel.from_pretrained(str(d / "transformer")).state_dict()
                        for d in (out, teacher))
    assert all(torch.equal(dit[k], teacher_dit[k]) for k in teacher_dit), "the base DiT is the teacher's"

    assert build_tiny.main(args) == 0  # resumable: every stage's output exists, nothing is retrained
    for p, stamp in stamps.items():
        assert p.stat().st_mtime_ns == stamp, p

    pipe = PusaPipeline.from_pretrained(out, device="cpu")
    assert pipe.label == build_tiny.LABEL and pipe.lora_paths
    s = GenerationSettings.parse({"prompt": "a red circle moving right fast", "task": "t2v", "steps": 2, "seed": 0})
    assert pipe.generate(s).frames.shape == (33, 64, 64, 3)


def test_a_second_build_waits_for_the_first_to_finish_the_shared_stages(tmp_path):
    """Two branches started together: the second enters stages 0-1 only when the first has left them."""
    import threading
    import time

    events = []
    first_inside = threading.Event()

    def first():
        with build_tiny.shared_stages_lock(tmp_path):
            events.append("first in")
            first_inside.set()
            time.sleep(0.5)
            events.append("first out")

    def second():
        first_inside.wait()
        with build_tiny.shared_stages_lock(tmp_path):  # a file opened anew: locks as another process would
            events.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert events == ["first in", "first out", "second in"]


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


def test_a_missing_teacher_commit_is_a_clear_error_that_names_the_way_out(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(build_tiny, "TEACHER_COMMIT", "0" * 40)
    assert build_tiny.main(["--work", str(tmp_path / "w"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "0000000000" in err and "--teacher DIR" in err and "git fetch --unshallow" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "w" / "teacher" / "src").exists()
    with pytest.raises(SystemExit) as exit_info:  # a --teacher folder that is not a model
        build_tiny.main(["--work", str(tmp_path / "w"), "--teacher", str(tmp_path)])
    assert exit_info.value.code == 2 and "--teacher" in capsys.readouterr().err


def _has_teacher_commit() -> bool:
    import subprocess

    return subprocess.run(["git", "-C", str(build_tiny.REPO_ROOT), "cat-file", "-e", build_tiny.TEACHER_COMMIT],
                          capture_output=True).returncode == 0


@pytest.mark.skipif(not _has_teacher_commit(), reason="a shallow clone: the teacher's commit is not in its history")
def test_the_teacher_is_built_by_its_own_commits_recipe(tmp_path):
    """Stage 0 checks out v1's recipe and runs its one command (toy steps here), in a process of its own."""
    from diffusers import AutoencoderKLWan

    out = build_tiny.build_teacher(tmp_path / "teacher", seed=3, extra_args=(
        "--clips", "2", "--t2v-steps", "1", "--vta-steps", "1", "--vae-steps", "1", "1", "1", "1", "1"))
    assert (tmp_path / "teacher" / "src" / "pusa" / "training" / "build_tiny.py").is_file()
    assert not AutoencoderKLWan.load_config(str(out / "vae"))["is_residual"], "v1's plain-block VAE"
    assert (out / "transformer" / "config.json").is_file()
    stamp = (out / "model_index.json").stat().st_mtime_ns
    assert build_tiny.build_teacher(tmp_path / "teacher", seed=3) == out  # done: not built again
    assert (out / "model_index.json").stat().st_mtime_ns == stamp


def test_distillation_pulls_the_latents_of_shapes_on_black_to_the_teachers():
    """With a teacher the encoder's means of its clips move towards the teacher's (and stay put without one)."""
    import numpy as np
    import torch

    teacher = tiny.make_vae(4).eval()
    teacher.register_to_config(latents_mean=[0.0] * 16, latents_std=[0.5] * 16)
    black = tiny._black_bank(np.random.default_rng(0), 4, frames=1)
    pictures = tiny._clip_bank(np.random.default_rng(1), 4, frames=1)
    probe = torch.from_numpy(black[:3, :, :, :32, :32])

    def distance(vae) -> float:
        with torch.no_grad():
            return float((vae.encode(probe).latent_dist.mode() - teacher.encode(probe).latent_dist.mode()).pow(2).mean())

    seen = []  # what the teacher is asked to encode: the half batch of its own world, never the varied pictures
    encode = teacher.encode
    teacher.encode = lambda x: seen.append(x) or encode(x)
    far = {}
    for with_teacher in (True, False):
        student = tiny.make_vae(5, **tiny.BUILD_VAE_CONFIG)
        start = distance(student)
        tiny.train_vae(student, seed=0, steps=25, batch=4, frames=1, crop=32, lr=2e-3, pictures=pictures,
                       teacher=teacher if with_teacher else None, teacher_bank=black, distill_weight=20.0)
        far[with_teacher] = distance(student) / start
    assert far[True] < 0.5 and far[True] < 0.5 * far[False], far
    steps = [x for x in seen if x.shape[0] != len(probe)]
    assert len(steps) == 25 and all(x.shape[0] == 2 for x in steps), "half a batch of 4 a step"
    assert all((x == -1).float().mean() > 0.7 for x in steps), "the teacher only sees shapes on black"


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


def test_a_decoder_phase_with_a_teacher_draws_its_shapes_from_the_teachers_latents(monkeypatch):
    """What the DiT generates are the teacher's latents: with the encoder frozen, the decoder is
    trained to draw the teacher's world from exactly those (and everything else from its own)."""
    import numpy as np
    import torch

    teacher = tiny.make_vae(4).eval()
    teacher.register_to_config(latents_mean=[0.0] * 16, latents_std=[0.5] * 16)
    black = tiny._black_bank(np.random.default_rng(0), 4, frames=1)
    pictures = tiny._clip_bank(np.random.default_rng(1), 4, frames=1)
    student = tiny.make_vae(5, **tiny.BUILD_VAE_CONFIG)
    encoder = {k: v.clone() for k, v in student.encoder.state_dict().items()}
    decoded, shown = [], []
    decode = tiny.decode_unclamped
    monkeypatch.setattr(tiny, "decode_unclamped", lambda vae, z: decoded.append(z.detach()) or decode(vae, z))
    encode = teacher.encode
    teacher.encode = lambda x: shown.append(x) or encode(x)
    tiny.train_vae(student, seed=0, steps=3, batch=4, frames=1, crop=32, pictures=pictures, latent_noise=0.0,
                   encoder=False, teacher=teacher, teacher_bank=black)
    assert len(decoded) == len(shown) == 3
    for z, x in zip(decoded, shown):
        assert z.shape[0] == 6 and x.shape[0] == 2 and (x == -1).float().mean() > 0.7
        with torch.no_grad():
            assert torch.allclose(z[4:], encode(x).latent_dist.mode(), atol=1e-4), "the teacher's latents of its shapes"
            own = student.encode(x).latent_dist.mode()
        assert not torch.allclose(z[4:], own)
    assert all(torch.equal(v, encoder[k]) for k, v in student.encoder.state_dict().items())
