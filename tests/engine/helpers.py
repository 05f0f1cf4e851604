"""Small synthetic inputs for engine tests."""

from pathlib import Path

import numpy as np
from PIL import Image

from pusa.media import write_mp4


def gradient_image(w: int = 96, h: int = 80, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] * np.ones((h, 1, 3), np.float32)
    return Image.fromarray(np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8))


def moving_square_video(path: Path, frames: int = 13, size: int = 64, fps: int = 16) -> Path:
    arr = np.zeros((frames, size, size, 3), np.uint8)
    for t in range(frames):
        x = 4 + 3 * t
        arr[t, 20:36, x:x + 16] = (230, 60, 40)
    return write_mp4(arr, path, fps)
