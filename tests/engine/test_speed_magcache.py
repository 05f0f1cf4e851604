"""MagCache (issue 11, item 3): ratios calibrated once per checkpoint (``pusa calibrate-magcache``),
planned per request for each expert's share of the steps, forwards skipped and counted, and a
clear refusal when a model has no calibration."""

from __future__ import annotations

import json
import shutil

import pytest

from pusa.cli import main
from pusa.pipeline import PusaPipeline
from pusa.settings import GenerationSettings
from pusa.speed.magcache import RATIOS_FILE, calibrate, load_ratios, write_ratios

from .helpers import gradient_image


def _settings(steps: int = 8, **kw) -> GenerationSettings:
    return GenerationSettings.parse({"prompt": "a red square moves right", "steps": steps, "seed": 11, "size": "64x48",
                                     "frames": 9, "task": "i2v", "noise_multipliers": "0.3", **kw})


def _run(pipe: PusaPipeline, steps: int = 8):
    return pipe.generate(_settings(steps), images=[gradient_image(seed=3)], return_latents=True)


@pytest.fixture(scope="module")
def model(tiny_diffusers, tmp_path_factory):
    """A copy of the tiny model, calibrated at 8 steps through the command line."""
    folder = tmp_path_factory.mktemp("magcache") / "tiny"
    shutil.copytree(tiny_diffusers, folder)
    assert main(["calibrate-magcache", "--model", str(folder), "--device", "cpu", "--steps", "8", "--size", "64x48",
                 "--frames", "9"]) == 0
    return folder


@pytest.fixture(scope="module")
def uncached(model):
    return _run(PusaPipeline.from_pretrained(model, device="cpu"))


def test_calibration_writes_one_ratio_per_step_beside_the_weights(model):
    data = json.loads((model / RATIOS_FILE).read_text())
    (ratios,) = data["experts"]
    assert len(ratios) == 8 and ratios[0] == 1.0 and all(r > 0 for r in ratios)
    assert data["calibrated_with"]["steps"] == 8
    assert load_ratios(model, 1) == [ratios]


def test_magcache_skips_forwards_and_resets_per_request(model, uncached):
    pipe = PusaPipeline.from_pretrained(model, device="cpu", cache="magcache", cache_threshold=0.5)
    first, second = _run(pipe), _run(pipe)
    assert first.stats["forwards"] == 16 and first.stats["skipped"] >= 4, first.stats
    assert first.metadata()["stats"] == first.stats
    assert second.stats == first.stats and (second.latents == first.latents).all()
    assert not (first.latents == uncached.latents).all()


def test_magcache_at_threshold_zero_changes_nothing(model, uncached, tmp_path):
    folder = tmp_path / "tiny"
    shutil.copytree(model, folder)
    ratios = load_ratios(folder, 1)
    write_ratios(folder / RATIOS_FILE, [[r * 1.01 for r in ratios[0]]], {})  # every step changes a little
    pipe = PusaPipeline.from_pretrained(folder, device="cpu", cache="magcache", cache_threshold=0.0)
    r = _run(pipe)
    assert r.stats == {"forwards": 16, "skipped": 0}
    assert (r.latents == uncached.latents).all()


def test_other_step_counts_get_interpolated_ratios(model):
    pipe = PusaPipeline.from_pretrained(model, device="cpu", cache="magcache", cache_threshold=0.5)
    r = _run(pipe, steps=16)
    config = pipe.transformers[0]._pusa_magcache[0]
    assert config.num_inference_steps == 16 and len(config.mag_ratios) == 16
    assert r.stats["forwards"] == 32 and r.stats["skipped"] > 0


def test_each_wan22_expert_is_calibrated_and_planned_for_its_own_steps(tiny_wan22, tmp_path):
    folder = tmp_path / "wan22"
    shutil.copytree(tiny_wan22, folder)
    calibrating = PusaPipeline.from_pretrained(folder, device="cpu")
    settings = calibrating.validate(_settings(10, task="t2v", noise_multipliers=None, cfg=1.0))
    high, low = calibrate(calibrating, settings)
    assert len(high) + len(low) == 10 and len(high) >= 2 and len(low) >= 2
    write_ratios(folder / RATIOS_FILE, [high, low], {})
    pipe = PusaPipeline.from_pretrained(folder, device="cpu", cache="magcache", cache_threshold=0.5)
    result = pipe.generate(pipe.validate(_settings(20, task="t2v", noise_multipliers=None, cfg=1.0)))
    planned = [dit._pusa_magcache[0].num_inference_steps for dit in pipe.transformers]
    assert planned == [result.experts.count("high"), result.experts.count("low")]
    assert sum(planned) == 20


@pytest.mark.parametrize("content, words", [
    (None, "run `pusa calibrate-magcache"),
    ("{not json", "unreadable"),
    ('{"experts": [[1.0, -2.0]]}', "not a positive number"),
    ('{"experts": [[1.0, 0.9], [1.0, 0.9]]}', "2 expert(s), this model has 1"),
])
def test_a_model_without_usable_ratios_is_refused_before_loading(tiny_diffusers, tmp_path, capsys, content, words):
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_diffusers, folder)
    if content is not None:
        (folder / RATIOS_FILE).write_text(content)
    code = main(["generate", "t2v", "--prompt", "a ball", "--model", str(folder), "--size", "64x48", "--frames", "5",
                 "--output", str(tmp_path / "a.mp4"), "--no-progress", "--device", "cpu", "--cache", "magcache"])
    err = capsys.readouterr().err
    assert code == 2 and "cache: magcache" in err and words in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1
