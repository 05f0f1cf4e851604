"""Training a light decoder (``python -m pusa.training.light_decoder``) on the bundled model's VAE."""

from __future__ import annotations

import json

import pytest
import torch

from pusa.light_decoder import decoder_width, load_decoder, narrow_vae
from pusa.loading.components import load_vae


def test_training_a_light_decoder_improves_on_its_pruned_start(tmp_path):
    """Its reconstruction of held-out clips improves over the pruned start, its encoder stays the model's,
    and the command writes a loadable folder with its report."""
    from pusa.bundled import default_model_dir
    from pusa.training import light_decoder as ld

    model_vae = load_vae(default_model_dir() / "vae", torch.float32).eval()
    start = narrow_vae(model_vae, 0.5)
    before = ld.quality_report(model_vae, start, seed=0, pictures=1, clips=1)
    assert ld.main(["--out", str(tmp_path / "light"), "--steps", "60", "2", "2", "--eval-pictures", "1"]) == 0
    report = json.loads((tmp_path / "light" / ld.REPORT_FILE).read_text())
    assert report["decoder_base_dim"] == {"model": 8, "light": 4}
    assert report["clips_33_frames"]["light"] > before["clips_33_frames"]["light"] + 1.0
    assert report["clips_33_frames"]["model"] == before["clips_33_frames"]["model"]
    loaded = load_decoder(tmp_path / "light", model_vae, torch.float32)
    assert decoder_width(loaded) == 4
    assert not (tmp_path / "light.partial").exists()
    with pytest.raises(SystemExit):
        ld.main(["--out", str(tmp_path / "x"), "--width", "1.5"])


def _videos(folder, colours, frames: int = 36, size: tuple[int, int] = (80, 48)):
    """Small MP4s, one flat colour each with a moving white bar, so each is recognisable in a bank."""
    import numpy as np

    from pusa.media import write_mp4

    folder.mkdir(exist_ok=True)
    for i, colour in enumerate(colours):
        video = np.empty((frames, size[1], size[0], 3), dtype=np.uint8)
        video[:] = colour
        for t in range(frames):
            video[t, :, (2 * t) % size[0]] = 255
        write_mp4(video, folder / f"v{i}.mp4", fps=8)
    return folder


def test_video_bank_holds_the_last_videos_out_and_names_bad_input(tmp_path):
    import numpy as np

    from pusa.errors import InputError
    from pusa.training.light_decoder import video_bank

    folder = _videos(tmp_path / "v", [(200, 30, 30), (30, 200, 30), (30, 30, 200)])
    (folder / "notes.txt").write_text("not a video")
    (folder / "short.mp4").write_bytes(b"not an mp4")  # unreadable: skipped, and said
    train, held = video_bank(folder, 32, 10)
    assert train.shape == (2, 3, 33, 32, 32) and held.shape == (1, 3, 33, 32, 32)
    means = [clip.mean(axis=(1, 2, 3)) for clip in (*train, *held)]
    assert [int(np.argmax(m)) for m in means] == [0, 1, 2]  # sorted by name, the last one held out
    with pytest.raises(InputError, match="video_size"):
        video_bank(folder, 40, 10)
    with pytest.raises(InputError, match="videos: .* 1 usable video"):
        video_bank(folder, 32, 1)
    with pytest.raises(InputError, match="videos: .* is not a folder"):
        video_bank(tmp_path / "missing", 32, 10)


def test_training_on_videos_reports_the_held_out_ones(tmp_path, capsys):
    from pusa.training import light_decoder as ld

    folder = _videos(tmp_path / "v", [(200, 30, 30), (30, 200, 30), (30, 30, 200)])
    assert ld.main(["--out", str(tmp_path / "light"), "--videos", str(folder), "--video-size", "48",
                    "--steps", "4", "2", "2", "--eval-pictures", "1"]) == 0
    report = json.loads((tmp_path / "light" / ld.REPORT_FILE).read_text())
    assert report["data"] == "2 videos at 48x48" and report["held_out_videos"]["count"] == 1
    assert set(report["held_out_videos"]) == {"count", "model", "light"}
    capsys.readouterr()
    assert ld.main(["--out", str(tmp_path / "x"), "--videos", str(tmp_path / "nowhere")]) == 2
    assert "videos:" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert ld.main(["--out", str(tmp_path / "x"), "--device", "cuda"]) == 2
        assert "device:" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
