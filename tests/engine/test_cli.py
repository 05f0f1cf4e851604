"""The ``pusa`` command: names scripts rely on, exit codes, messages and outputs."""

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
                         "--image", str(tmp_path / "k1.png"), "--cond-positions", "0,2", "--noise-multipliers",
                         "0.2,0.5", "--model", str(tiny_diffusers), "--steps", "1", "--output", str(tmp_path / "frames/"),
                         "--no-progress")
    assert code == 0, err
    assert len(list((tmp_path / "frames").glob("frame_*.png"))) == 9


def test_generate_v2v(capsys, tiny_diffusers, tmp_path):
    video = moving_square_video(tmp_path / "in.mp4", frames=9)
    code, out, err = run(capsys, "generate", "v2v", "--prompt", "x", "--video", str(video), "--cond-positions", "0,1",
                         "--model", str(tiny_diffusers), "--steps", "1", "--output", str(tmp_path / "o.mp4"),
                         "--no-progress")
    assert code == 0, err


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
    assert code == 2 and "image: file not found" in err
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


@pytest.mark.parametrize("task,example", [("t2v", "pusa generate t2v --prompt"), ("i2v", "--image start.png"),
                                          ("keyframes", "--cond-positions 0,20"), ("v2v", "--cond-positions 0,1,2,3")])
def test_help_shows_a_working_example(task, example):
    res = subprocess.run([sys.executable, "-m", "pusa.cli", "generate", task, "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    assert example in res.stdout
    assert ("--noise-multipliers" in res.stdout) == (task != "t2v")  # t2v has no conditions
