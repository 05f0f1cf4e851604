"""The speed options from the command line (issue 11, items 1-6): flags reach ``from_pretrained``,
bad ones exit 2 with one line, the 4-step preset fills its settings, and the sidecar counts forwards."""

from __future__ import annotations

import importlib.util
import json

import pytest

from pusa.cli import main
from pusa.pipeline import PusaPipeline
from pusa.settings import GenerationSettings
from pusa.testing.layouts import make_tiny_dit, write_lora


def _generate(capsys, model, tmp_path, *extra):
    out = tmp_path / "a.mp4"
    try:
        code = main(["generate", "t2v", "--prompt", "a ball", "--model", str(model), "--size", "64x48", "--frames", "5",
                     "--seed", "3", "--output", str(out), "--no-progress", "--device", "cpu", *extra])
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    _, err = capsys.readouterr()
    meta = json.loads(out.with_suffix(".json").read_text()) if code == 0 else None
    return code, err, meta


@pytest.fixture(scope="module")
def distill_lora(tmp_path_factory):
    return write_lora(tmp_path_factory.mktemp("lightx2v") / "distill.safetensors", make_tiny_dit(0), rank=4, seed=9)


def test_sidecar_counts_forwards_of_a_plain_run(capsys, tiny_diffusers, tmp_path):
    code, err, meta = _generate(capsys, tiny_diffusers, tmp_path, "--steps", "2", "--cfg", "1")
    assert code == 0, err
    assert meta["stats"] == {"forwards": 2, "skipped": 0}


def test_cli_cache_flags_reach_the_engine(capsys, tiny_diffusers, tmp_path):
    code, err, meta = _generate(capsys, tiny_diffusers, tmp_path, "--steps", "6", "--cfg", "1", "--cache", "fbcache",
                                "--cache-threshold", "0.5", "--modulation", "per_frame", "--weights", "fp8",
                                "--attention", "sdpa")
    assert code == 0, err
    assert meta["stats"]["forwards"] == 6 and meta["stats"]["skipped"] > 0


@pytest.mark.parametrize("flags, message", [
    (["--cache", "fbcache", "--cache-threshold", "3"], "cache_threshold"),
    (["--cache", "taylorseer", "--cache-threshold", "0.1"], "cache_threshold"),
    (["--preset", "lightx2v"], "extra_lora: --preset lightx2v needs"),
    (["--cache", "magcache"], "cache: magcache needs magnitude ratios calibrated for this model"),
])
def test_bad_speed_flags_exit_2_with_one_line(capsys, tiny_diffusers, tmp_path, flags, message):
    code, err, _ = _generate(capsys, tiny_diffusers, tmp_path, *flags)
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is not None, reason="flash-attn is installed here")
def test_missing_attention_kernel_exits_2(capsys, tiny_diffusers, tmp_path):
    code, err, _ = _generate(capsys, tiny_diffusers, tmp_path, "--attention", "flash")
    assert code == 2 and "attention: 'flash' needs flash-attn" in err


def test_lightx2v_preset_is_4_steps_cfg_1_shift_5_with_the_distillation_lora(capsys, tiny_diffusers, tmp_path,
                                                                             distill_lora):
    code, err, meta = _generate(capsys, tiny_diffusers, tmp_path, "--preset", "lightx2v", "--extra-lora",
                                str(distill_lora))
    assert code == 0, err
    s = meta["settings"]
    assert (s["steps"], s["cfg"], s["shift"]) == (4, 1.0, 5.0)
    assert meta["stats"] == {"forwards": 4, "skipped": 0}  # cfg 1: one forward per step
    assert "distill.safetensors" in meta["loras"]


def test_a_request_field_wins_over_the_preset(tiny_diffusers, distill_lora):
    pipe = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", preset="lightx2v", extra_lora=distill_lora)
    s = pipe.validate(GenerationSettings.parse({"prompt": "x", "steps": 2}))
    assert (s.steps, s.cfg, s.shift) == (2, 1.0, 5.0)


def test_wan22_preset_needs_a_distillation_lora_per_expert(tiny_wan22, distill_lora):
    from pusa.errors import InputError

    with pytest.raises(InputError, match="extra_lora_low"):
        PusaPipeline.from_pretrained(tiny_wan22, device="cpu", preset="lightx2v", extra_lora=distill_lora)


# ---- the preset per job (API and studio send it in the settings; the model decides what it allows)

@pytest.fixture(scope="module")
def plain_pipe(tiny_diffusers, distill_lora):
    """Loaded with the distillation LoRA but no preset: a job may pick lightx2v or leave it off."""
    return PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", extra_lora=distill_lora)


def test_a_job_picks_the_preset_and_gets_its_settings(plain_pipe):
    s = plain_pipe.validate(GenerationSettings.parse({"prompt": "x", "preset": "lightx2v"}))
    assert (s.steps, s.cfg, s.shift, s.preset) == (4, 1.0, 5.0, "lightx2v")
    plain = plain_pipe.validate(GenerationSettings.parse({"prompt": "x"}))
    assert (plain.steps, plain.cfg, plain.preset, plain.extra_lora_scale) == (10, 5.0, "none", 1.0)
    assert plain_pipe.presets == ["none", "lightx2v"]


def test_a_job_without_the_preset_turns_the_distillation_lora_off(tiny_diffusers, distill_lora):
    pipe = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu", preset="lightx2v", extra_lora=distill_lora)
    assert pipe.validate(GenerationSettings.parse({"prompt": "x"})).steps == 4  # the server's preset
    off = pipe.validate(GenerationSettings.parse({"prompt": "x", "preset": "none"}))
    assert (off.steps, off.cfg, off.extra_lora_scale, off.preset) == (10, 5.0, 0.0, "none")
    kept = pipe.validate(GenerationSettings.parse({"prompt": "x", "preset": "none", "extra_lora_scale": 0.5}))
    assert kept.extra_lora_scale == 0.5  # a scale the job sets itself wins


def test_a_preset_needing_a_lora_that_was_not_loaded_is_refused(tiny_diffusers):
    from pusa.errors import InputError

    pipe = PusaPipeline.from_pretrained(tiny_diffusers, device="cpu")
    assert pipe.presets == ["none"]
    with pytest.raises(InputError, match=r"preset: lightx2v needs its distillation LoRA.*allowed here: none"):
        pipe.validate(GenerationSettings.parse({"prompt": "x", "preset": "lightx2v"}))
