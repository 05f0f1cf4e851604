"""Synthetic "moving shapes" videos with captions and ground-truth trajectories.

Why synthetic: the bundled pusa-tiny model must be trained on a 2-core CPU in minutes and its
behaviour (does the object keep moving the right way after the condition frame? does it reach the
keyframe?) must be *measurable*. Flat-coloured shapes on a black background make the object
position recoverable from pixels, and the generator knows the true position of every object in
every frame, so `pusa eval` can score motion against ground truth instead of eyeballing.

Each clip: 1-2 objects (circle, square or triangle; 8 colours; small or large; slow or fast; one of
8 directions) moving at constant velocity and bouncing off the borders. The caption names every
object with its size, colour, shape, initial direction and speed, e.g.
"a large red circle moving right fast and a small blue square moving up slow".
:func:`make_dataset` mixes these with scene clips (backgrounds, ground planes, up to three
occluding objects, captioned camera pans) from ``pusa.training.scenes``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (60, 100, 250),
    "yellow": (240, 220, 40),
    "white": (235, 235, 235),
    "magenta": (220, 60, 220),
    "cyan": (40, 220, 220),
    "orange": (250, 140, 30),
}
SHAPES = ("circle", "square", "triangle")
# Radius as a fraction of the frame size, so clips of any size look alike (64 px: 5 and 9 px).
SIZES: dict[str, float] = {"small": 0.08, "large": 0.14}
# Speed in frame sizes per pixel frame (64 px: 0.9 and 1.8 px per frame).
SPEEDS: dict[str, float] = {"slow": 0.014, "fast": 0.028}
DIRECTIONS: dict[str, tuple[float, float]] = {
    "right": (1.0, 0.0),
    "left": (-1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
    "up-right": (math.sqrt(0.5), -math.sqrt(0.5)),
    "up-left": (-math.sqrt(0.5), -math.sqrt(0.5)),
    "down-right": (math.sqrt(0.5), math.sqrt(0.5)),
    "down-left": (-math.sqrt(0.5), math.sqrt(0.5)),
}
CAPTION_WORDS = (
    ["a", "and", "moving"] + list(COLORS) + list(SHAPES) + list(SIZES) + list(SPEEDS)
    + ["right", "left", "up", "down", "-"]
)
# Share of the training set that are scene clips (backgrounds, ground, several objects, pans);
# the rest are moving shapes on black, the in-distribution cases of `pusa eval`.
SCENE_SHARE = 2 / 3


@dataclass
class ShapeObject:
    """One object of a clip; ``trajectory`` holds its centre (x, y) in pixels for every frame."""

    shape: str
    color: str
    size: str
    speed: str
    direction: str
    radius: float
    trajectory: list[tuple[float, float]] = field(default_factory=list)

    def phrase(self) -> str:
        return f"a {self.size} {self.color} {self.shape} moving {self.direction} {self.speed}"


@dataclass
class Clip:
    """A rendered clip: uint8 frames (T, H, W, 3), its caption and its objects with trajectories.

    ``background`` names the background kind (``black`` for the moving-shapes clips, see
    ``pusa.training.scenes``); ``static_background`` is the uint8 picture behind the objects when
    the camera does not move (what evaluation's "background kept" figure compares against).
    """

    frames: np.ndarray
    caption: str
    objects: list[ShapeObject]
    background: str = "black"
    static_background: np.ndarray | None = None

    def meta(self) -> dict:
        return {"caption": self.caption, "background": self.background,
                "objects": [asdict(o) for o in self.objects]}


def _simulate(rng: np.random.Generator, width: int, height: int, frames: int, obj: ShapeObject) -> None:
    """Fill ``obj.trajectory`` with a constant-velocity path that bounces off the borders."""
    r = obj.radius
    x = rng.uniform(r + 1, width - r - 1)
    y = rng.uniform(r + 1, height - r - 1)
    dx, dy = DIRECTIONS[obj.direction]
    v = SPEEDS[obj.speed] * min(width, height)
    vx, vy = dx * v, dy * v
    traj = []
    for _ in range(frames):
        traj.append((float(x), float(y)))
        x, y = x + vx, y + vy
        if x < r or x > width - r:
            vx = -vx
            x = 2 * (r if x < r else width - r) - x
        if y < r or y > height - r:
            vy = -vy
            y = 2 * (r if y < r else height - r) - y
    obj.trajectory = traj


def _coverage(shape: str, xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, r: float) -> np.ndarray:
    """Boolean mask of the shape on a (supersampled) pixel grid."""
    if shape == "circle":
        return (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
    if shape == "square":
        h = r * 0.85
        return (np.abs(xs - cx) <= h) & (np.abs(ys - cy) <= h)
    # Upward equilateral-ish triangle inscribed in the circle of radius r (centroid at the centre).
    top = cy - r
    bottom = cy + 0.5 * r
    half_base = r * math.sqrt(3) / 2
    t = np.clip((ys - top) / (bottom - top), 0.0, 1.0)
    return (ys >= top) & (ys <= bottom) & (np.abs(xs - cx) <= t * half_base)


def render(objects: list[ShapeObject], width: int, height: int, frames: int, supersample: int = 2) -> np.ndarray:
    """Draw the objects' trajectories into uint8 frames with anti-aliased edges (supersampling)."""
    s = supersample
    ys, xs = np.mgrid[0:height * s, 0:width * s].astype(np.float32)
    xs = (xs + 0.5) / s
    ys = (ys + 0.5) / s
    out = np.zeros((frames, height, width, 3), dtype=np.float32)
    for t in range(frames):
        canvas = np.zeros((height * s, width * s, 3), dtype=np.float32)
        for obj in objects:
            cx, cy = obj.trajectory[t]
            mask = _coverage(obj.shape, xs, ys, cx, cy, obj.radius)
            canvas[mask] = COLORS[obj.color]
        out[t] = canvas.reshape(height, s, width, s, 3).mean(axis=(1, 3))
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def random_clip(rng: np.random.Generator, width: int = 64, height: int = 64, frames: int = 33,
                n_objects: int | None = None) -> Clip:
    """One random clip; objects of a clip get distinct colours so captions stay unambiguous."""
    if n_objects is None:
        n_objects = 1 if rng.random() < 0.6 else 2
    colors = rng.choice(list(COLORS), size=n_objects, replace=False)
    objects = []
    for i in range(n_objects):
        size = str(rng.choice(list(SIZES)))
        obj = ShapeObject(
            shape=str(rng.choice(SHAPES)), color=str(colors[i]), size=size,
            speed=str(rng.choice(list(SPEEDS))), direction=str(rng.choice(list(DIRECTIONS))),
            radius=SIZES[size] * min(width, height),
        )
        _simulate(rng, width, height, frames, obj)
        objects.append(obj)
    caption = " and ".join(o.phrase() for o in objects)
    return Clip(frames=render(objects, width, height, frames), caption=caption, objects=objects)


def write_video(path: Path, frames: np.ndarray, fps: int = 16) -> None:
    """Write uint8 frames as a near-lossless H.264 file (4:4:4 so thin colour edges survive)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = frames.shape[2]
        stream.height = frames.shape[1]
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": "8", "preset": "veryfast"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_dataset(out_dir: str | Path, count: int, *, seed: int = 0, width: int = 64, height: int = 64,
                 frames: int = 33, fps: int = 16, scene_share: float = SCENE_SHARE) -> Path:
    """Write ``count`` clips as ``videos/NNNNNN.mp4`` plus ``metadata.jsonl`` (the trainer's format).

    A ``scene_share`` of the clips are scenes (``pusa.training.scenes.scene_clip``: training
    background kinds only), the rest moving shapes on black. Each JSONL line has ``file`` and
    ``caption`` (what `pusa train` reads), ``background`` and ``objects`` with the ground-truth
    trajectories (what evaluation reads). ``metadata.jsonl`` is written last, atomically.
    """
    from pusa.atomic import atomic_file
    from pusa.training.scenes import scene_clip

    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # the caption file appears only when every clip is written: a killed run never looks finished
    with atomic_file(out / "metadata.jsonl") as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for i in range(count):
            scene = rng.random() < scene_share
            clip = scene_clip(rng, width, height, frames) if scene else random_clip(rng, width, height, frames)
            name = f"videos/{i:06d}.mp4"
            write_video(out / name, clip.frames, fps=fps)
            fh.write(json.dumps({"file": name, **clip.meta()}) + "\n")
    log.info("wrote %d synthetic clips to %s", count, out)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m pusa.training.synthetic OUT --count N --seed S``: write a synthetic dataset."""
    import argparse

    p = argparse.ArgumentParser(description="Write a folder of synthetic moving-shape videos with captions.",
                                epilog="example: python -m pusa.training.synthetic data/shapes --count 200 --seed 0")
    p.add_argument("out")
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--frames", type=int, default=33)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    make_dataset(a.out, a.count, seed=a.seed, width=a.width, height=a.height, frames=a.frames)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
