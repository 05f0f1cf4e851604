"""Every input is checked before any weight loads, and bad input exits 2 with one line."""

import pytest
from PIL import Image

from pusa.cli import main
from pusa.pipeline import PusaPipeline

from .helpers import gradient_image, moving_square_video


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if the model is loaded: these inputs must be refused first."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the bad input was noticed")

    monkeypatch.setattr(PusaPipeline, "from_pretrained", classmethod(refuse))


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "usage:" not in err
    return lines[0]


def test_unwritable_or_impossible_output_is_refused_before_loading(capsys, no_loading, tmp_path):
    code, _, err = run(capsys, "generate", "t2v", "--prompt", "x", "--output", "/dev/null/x.mp4")
    assert code == 2 and "output: cannot write under /dev/null" in _one_line_error(err)
    code, _, err = run(capsys, "generate", "t2v", "--prompt", "x", "--output", str(tmp_path / "x.avi"))
    assert code == 2 and "output: x.avi must end in .mp4" in _one_line_error(err)


def test_missing_model_and_unreadable_lora_exit_2(capsys, no_loading, tmp_path):
    code, _, err = run(capsys, "generate", "t2v", "--prompt", "x", "--model", str(tmp_path / "nope"))
    assert code == 2 and "model folder not found" in _one_line_error(err)
    code, _, err = run(capsys, "info", str(tmp_path / "nope"))
    assert code == 2 and "model folder not found" in _one_line_error(err)


def test_lora_that_cannot_be_read_exits_2(capsys, tiny_diffusers, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00garbage, not a safetensors header")
    code, _, err = run(capsys, "generate", "t2v", "--prompt", "x", "--model", str(tiny_diffusers), "--lora", str(bad),
                       "--steps", "1", "--no-progress", "--output", str(tmp_path / "o.mp4"))
    assert code == 2 and "LoRA broken.safetensors is not a readable safetensors file" in _one_line_error(err)
    code, _, err = run(capsys, "generate", "t2v", "--prompt", "x", "--model", str(tiny_diffusers), "--lora",
                       str(tmp_path / "absent.pt"))
    assert code == 2 and "LoRA file not found" in _one_line_error(err)


def test_decompression_bomb_exits_2_quickly(capsys, no_loading, tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)  # ~50 KB on disk, 400 Mpx decoded
    before = Image.MAX_IMAGE_PIXELS
    code, _, err = run(capsys, "generate", "i2v", "--prompt", "x", "--image", str(bomb))
    assert code == 2 and "image" in _one_line_error(err) and "pixels" in err
    assert Image.MAX_IMAGE_PIXELS == before  # the check is per call, never a process-wide switch


def test_video_too_short_for_its_positions_is_refused_before_loading(capsys, no_loading, tmp_path):
    video = moving_square_video(tmp_path / "short.mp4", frames=5)
    code, _, err = run(capsys, "generate", "v2v", "--prompt", "x", "--video", str(video), "--cond-positions", "0,2")
    assert code == 2 and "position 2 needs at least 9 frames" in _one_line_error(err)


def test_positions_beyond_the_video_and_negative_positions(capsys, no_loading, tmp_path):
    gradient_image().save(tmp_path / "a.png")
    code, _, err = run(capsys, "generate", "i2v", "--prompt", "x", "--image", str(tmp_path / "a.png"),
                       "--cond-positions", "9")
    assert code == 2 and "cond_positions: 9 is outside 0 to 8" in _one_line_error(err)  # bundled: 33 frames
    code, _, err = run(capsys, "generate", "keyframes", "--prompt", "x", "--image", str(tmp_path / "a.png"),
                       "--image", str(tmp_path / "a.png"), "--cond-positions", "-1,8")
    assert code == 2 and "position -1 is below 0" in _one_line_error(err)


def test_too_many_keyframes_names_the_real_problem(capsys, no_loading, tmp_path):
    gradient_image().save(tmp_path / "a.png")
    images = [arg for _ in range(10) for arg in ("--image", str(tmp_path / "a.png"))]
    code, _, err = run(capsys, "generate", "keyframes", "--prompt", "x", *images)
    line = _one_line_error(err)
    assert code == 2 and "10 images but 33 frames have only 9 latent positions" in line
    assert "more than once" not in line


def test_size_over_the_models_budget_is_refused(capsys, no_loading):
    code, _, err = run(capsys, "generate", "t2v", "--prompt", "x", "--size", "4096x4096", "--frames", "1001")
    assert code == 2 and "size:" in _one_line_error(err) and "at most 540,672" in err
    code, _, err = run(capsys, "generate", "t2v", "--prompt", "x", "--size", "4096x4096", "--frames", "1001",
                       "--max-pixel-frames", "100")
    assert code == 2 and "at most 100 " in err


def test_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["generate", "i2v", "--prompt", "x"])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert "--image" in _one_line_error(err) and "pusa generate i2v --help" in err
