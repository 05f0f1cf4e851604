import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pusa.errors import MediaError
from pusa.media import fit_image, load_image, read_video_frames, write_mp4, write_png_frames


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    img.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").size == (20, 40)


def test_transparency_is_flattened_on_white(tmp_path):
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "t.png")
    img = load_image(tmp_path / "t.png")
    assert img.mode == "RGB" and img.getpixel((0, 0)) == (255, 255, 255)
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "t.webp")
    assert load_image(tmp_path / "t.webp").getpixel((1, 1)) == (255, 255, 255)


def test_crop_and_letterbox_keep_aspect():
    img = Image.new("RGB", (200, 100), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 50, 100))  # red left quarter
    crop = fit_image(img, 64, 64, "crop")
    assert crop.size == (64, 64) and crop.getpixel((1, 32))[2] > 200  # red quarter cropped away
    box = fit_image(img, 64, 64, "letterbox")
    assert box.getpixel((32, 2)) == (0, 0, 0) and box.getpixel((32, 32))[2] > 200  # bars top/bottom


def test_unreadable_inputs(tmp_path):
    (tmp_path / "x.png").write_text("not an image")
    with pytest.raises(MediaError, match="image: x.png is not an image we can read"):
        load_image(tmp_path / "x.png")
    with pytest.raises(MediaError, match="video: x.png is not a video we can read"):
        read_video_frames(tmp_path / "x.png")


def test_failed_write_leaves_nothing(tmp_path):
    bad = np.zeros((3, 32, 33, 3), np.uint8)  # odd width: the yuv420p encoder refuses it
    with pytest.raises(Exception):
        write_mp4(bad, tmp_path / "o.mp4", 16)
    assert os.listdir(tmp_path) == []


def test_existing_output_is_not_overwritten(tmp_path):
    frames = np.zeros((5, 32, 32, 3), np.uint8)
    write_mp4(frames, tmp_path / "o.mp4", 16)
    with pytest.raises(MediaError, match="already exists"):
        write_mp4(frames, tmp_path / "o.mp4", 16)
    write_mp4(frames + 5, tmp_path / "o.mp4", 16, overwrite=True)


def test_png_frames_are_lossless(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)
    out = write_png_frames(frames, tmp_path / "frames", {"seed": 1})
    back = np.stack([np.asarray(Image.open(out / f"frame_{i:05d}.png")) for i in range(3)])
    assert (back == frames).all() and (out / "settings.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]
