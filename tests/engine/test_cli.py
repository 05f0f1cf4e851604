"""The ``pusa`` command: names scripts rely on, exit codes, messages and outputs."""

import json
import shlex
import subprocess
import sys

import pytest

from pusa.cli import main
from pusa.media import video_info

from .helpers import gradient_image, moving_square_video


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_t2v_prints_the_output_path(capsys, tiny_diffusers, tmp_path):
    out_file = tmp_path / "a.mp4"
    code, out, err = run(capsys, "generate", "t2v", "--prompt", "a ball", "--model", str(tiny_diffusers), "--steps", "2",
                         "--seed", "9", "--size", "64x48", "--frames", "5", "--fps", "8", "--output", str(out_file),
                         "--no-progress", "--device", "cpu")
    assert code == 0, err
    assert out.strip() == str(out_file) and "seed: 9" in err
    info = video_info(out_file)
    assert (info["frames"], info["width"], info["height"], info["fps"]) == (5, 64, 48, 8.0)


def test_generate_keyframes_and_png_folder_output(capsys, tiny_diffusers, tmp_path):
    for i in range(2):
        gradient_image(seed=i).save(tmp_path / f"k{i}.png")
    code, out, err = run(capsys, "generate", "keyframes", "--prompt", "x", "--image", str(tmp_path / "k0.png"),
                         "--image", str(tmp_path / "k1.png"), "--cond-positions", "2,0", "--noise-multipliers",
                         "0.3,0.5", "--model", str(tiny_diffusers), "--steps", "1", "--output", str(tmp_path / "frames/"),
                         "--no-progress", "--device", "cpu")
    assert code == 0, err
    assert len(list((tmp_path / "frames").glob("frame_*.png"))) == 9
    settings = json.loads((tmp_path / "frames" / "settings.json").read_text())["settings"]
    # the flags reach the engine as given, in image order (not sorted)
    assert settings["cond_positions"] == [2, 0] and settings["noise_multipliers"] == [0.3, 0.5]


def test_vae_dtype_reaches_the_decoder(capsys, tiny_diffusers, tmp_path):
    """``--vae-dtype bf16`` decodes in bfloat16: the same video within a few levels, not the same bits."""
    import numpy as np
    from PIL import Image

    videos = {}
    for dtype in ("fp32", "bf16"):
        code, _, err = run(capsys, "generate", "t2v", "--prompt", "a ball", "--model", str(tiny_diffusers), "--steps",
                           "2", "--seed", "3", "--size", "64x48", "--frames", "5", "--vae-dtype", dtype, "--output",
                           str(tmp_path / f"{dtype}/"), "--no-progress", "--device", "cpu")
        assert code == 0, err
        videos[dtype] = np.stack([np.asarray(Image.open(f)) for f in sorted((tmp_path / dtype).glob("frame_*.png"))])
    diff = np.abs(videos["fp32"].astype(int) - videos["bf16"].astype(int))
    assert videos["fp32"].shape == videos["bf16"].shape == (5, 48, 64, 3)
    assert diff.max() > 0 and diff.mean() < 3.0
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "t2v", "--prompt", "x", "--model", str(tiny_diffusers), "--vae-dtype", "int8"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--vae-dtype" in err and "bf16" in err


def test_generate_v2v_writes_the_requested_video_and_its_sidecar(capsys, tiny_diffusers, tmp_path):
    video = moving_square_video(tmp_path / "in.mp4", frames=9)
    out_file = tmp_path / "o.mp4"
    code, out, err = run(capsys, "generate", "v2v", "--prompt", "the square keeps moving", "--video", str(video),
                         "--cond-positions", "0,1", "--model", str(tiny_diffusers), "--steps", "1", "--seed", "4",
                         "--size", "64x48", "--frames", "9", "--fps", "8", "--output", str(out_file), "--no-progress",
                         "--device", "cpu")
    assert code == 0, err
    assert out.strip() == str(out_file) and "seed: 4" in err
    info = video_info(out_file)
    assert (info["frames"], info["width"], info["height"], info["fps"]) == (9, 64, 48, 8.0)
    meta = json.loads(out_file.with_suffix(".json").read_text())
    settings = meta["settings"]
    assert meta["seed"] == settings["seed"] == 4
    assert settings["task"] == "v2v" and settings["prompt"] == "the square keeps moving"
    assert settings["cond_positions"] == [0, 1]
    assert settings["noise_multipliers"] == [0.0, 0.0]  # a video condition defaults to kept exactly
    assert (settings["width"], settings["height"], settings["frames"], settings["fps"]) == (64, 48, 9, 8)
    assert settings["steps"] == 1 and meta["generator"] == "pusa"


@pytest.mark.parametrize("args,message", [
    (["--steps", "0"], "error: steps: 0 is not allowed; expected a value from 1 to 50"),
    (["--size", "100x100"], "error: width: 100 is not a multiple of 16"),
    (["--frames", "10"], "error: frames: 10 is not of the form 4k+1"),
    (["--lora-alpha", "9"], "error: lora_alpha: 9.0 is not allowed; expected a value from 0.0 to 5.0"),
])
def test_bad_input_exits_2_without_traceback(capsys, tiny_diffusers, args, message):
    code, out, err = run(capsys, "generate", "t2v", "--prompt", "x", "--model", str(tiny_diffusers), *args)
    assert code == 2 and message in err and "Traceback" not in err


def test_bad_positions_and_missing_files_exit_2(capsys, tiny_diffusers, tmp_path):
    gradient_image().save(tmp_path / "a.png")
    code, _, err = run(capsys, "generate", "i2v", "--prompt", "x", "--image", str(tmp_path / "a.png"),
                       "--cond-positions", "7", "--model", str(tiny_diffusers), "--no-progress")
    assert code == 2 and "cond_positions: 7 is outside 0 to 2" in err
    code, _, err = run(capsys, "generate", "i2v", "--prompt", "x", "--image", str(tmp_path / "nope.png"))
    assert code == 2 and "file not found" in err and "nope.png" in err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    code, _, err = run(capsys, "generate", "t2v", "--prompt", "x", "--output", str(busy))
    assert code == 2 and "is not empty" in err and (busy / "keep.txt").read_text() == "x"
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"x")
    code, _, err = run(capsys, "generate", "t2v", "--prompt", "x", "--output", str(existing))
    assert code == 2 and "already exists" in err and existing.read_bytes() == b"x"


def test_broken_model_exits_1(capsys, tmp_path):
    (tmp_path / "model_index.json").write_text("{}")
    code, _, err = run(capsys, "generate", "t2v", "--prompt", "x", "--model", str(tmp_path))
    assert code == 1 and "transformer folder not found" in err


def test_info_lists_components(capsys, tiny_wan22):
    code, out, _ = run(capsys, "info", str(tiny_wan22))
    assert code == 0
    assert "wan2.2-original" in out and "high_noise_model" in out and "low_noise_model" in out
    assert "expert boundary" in out


def _help_text(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("task", ["t2v", "i2v", "keyframes", "v2v"])
def test_help_shows_the_task_options(capsys, task):
    text = _help_text(capsys, "generate", task)
    assert "example:" in text and f"pusa generate {task} " in text
    assert ("--noise-multipliers" in text) == (task != "t2v")  # t2v has no conditions
    assert f"pusa generate {task} " in _help_text(capsys, "generate")  # the overview lists every task's example


def test_python_m_pusa_cli_runs():
    res = subprocess.run([sys.executable, "-m", "pusa.cli", "generate", "t2v", "--help"], capture_output=True,
                         text=True)
    assert res.returncode == 0 and "pusa generate t2v " in res.stdout


@pytest.mark.parametrize("task", ["t2v", "i2v", "keyframes", "v2v"])
def test_the_help_example_runs_as_written_on_the_bundled_model(capsys, task, tmp_path):
    """Copy the example out of ``pusa generate TASK --help`` and run it: only its file names are replaced
    by real files under tmp_path (images and a video made here), plus where to write and no progress bar.
    No --model: the example must work on the bundled default model."""
    text = _help_text(capsys, "generate", task)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith(f"pusa generate {task} ")]
    assert len(lines) == 1, text
    argv = shlex.split(lines[0])[1:]  # drop "pusa"
    given = {}
    for i, arg in enumerate(argv[:-1]):
        if arg.startswith("--"):
            given.setdefault(arg, []).append(argv[i + 1])
    positions = [int(p) for p in given.get("--cond-positions", ["0"])[0].split(",")]
    for i, arg in enumerate(argv[:-1]):
        if arg == "--image":
            argv[i + 1] = str(tmp_path / argv[i + 1])
            gradient_image(seed=i).save(argv[i + 1])  # any size: the engine fits it
        elif arg == "--video":
            argv[i + 1] = str(moving_square_video(tmp_path / argv[i + 1], frames=4 * max(positions) + 5))
    out_file = tmp_path / "out" / "example.mp4"
    code, out, err = run(capsys, *argv, "--output", str(out_file), "--no-progress", "--device", "cpu")
    assert code == 0, f"{lines[0]}\n{err}"
    assert out.strip() == str(out_file)
    meta = json.loads(out_file.with_suffix(".json").read_text())
    settings = meta["settings"]
    info = video_info(out_file)
    assert (info["frames"], info["width"], info["height"]) == (settings["frames"], settings["width"],
                                                                 settings["height"])
    assert settings["task"] == task and settings["prompt"] == given["--prompt"][0]
    for flag, field, kind in (("--steps", "steps", int), ("--seed", "seed", int),
                              ("--cond-positions", "cond_positions", int),
                              ("--noise-multipliers", "noise_multipliers", float)):
        if flag in given:
            expected = [kind(v) for v in given[flag][0].split(",")]
            assert settings[field] == (expected if field in ("cond_positions", "noise_multipliers") else expected[0])
    if "--seed" in given:
        assert f"seed: {given['--seed'][0]}" in err
