"""Procedural pictures and scene clips: the varied content the bundled model must handle.

Why: a model trained only on shapes over black turns any real picture into blobs on black (its
VAE never saw a background). These generators give the VAE and the DiT backgrounds of many kinds,
objects of every colour, thin strokes, occlusion and slow camera pans, while staying cheap enough
to render thousands of clips on a CPU.

Kinds are split so that evaluation measures generalisation, not memory:

* :data:`TRAIN_KINDS` (used by the build): ``flat``, ``gradient`` (linear or radial), ``noise``
  (per-pixel noise over a colour or gradient), ``texture`` (value noise, stripes, checkers),
  ``ground`` (a sky over a straight horizon and a ground plane).
* :data:`HELD_OUT_KINDS` (never in training): ``fields`` (smooth natural-like fields: sums of
  random low-frequency sinusoids and Gaussian blobs), ``photo`` (photo-like scenes: a sky gradient,
  curved hills, a glowing sun, a shaded ball; the first one is the navy sky + green ground + red
  ball picture of issue 13), ``studio`` (the studio's own sunrise example pictures, drawn as
  ``pusa/service/studio/examples.py`` draws them).

Every array here is float32 ``(H, W, 3)`` in 0..255 unless it says uint8.
"""

from __future__ import annotations

import math

import numpy as np

from pusa.training.synthetic import (COLORS, DIRECTIONS, SHAPES, SIZES, SPEEDS, Clip, ShapeObject, _coverage,
                                     _simulate, random_clip)

TRAIN_KINDS = ("flat", "gradient", "noise", "texture", "ground")
HELD_OUT_KINDS = ("fields", "photo", "studio")
# Camera pans (background shift in pixel frames): slow, one of four directions, captioned.
PAN_DIRECTIONS = ("left", "right", "up", "down")
PAN_SPEED = 0.008  # frame sizes per pixel frame (64 px: ~0.5 px per frame, 17 px over a clip)
CAMERA_WORDS = ["with", "the", "camera", "panning"]


def _color(rng: np.random.Generator, lo: float = 0.0, hi: float = 255.0) -> np.ndarray:
    return rng.uniform(lo, hi, size=3).astype(np.float32)


def _grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return (xs + 0.5) / max(w, h), (ys + 0.5) / max(w, h)


def _gradient(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    xs, ys = _grid(w, h)
    a, b = _color(rng), _color(rng)
    if rng.random() < 0.3:  # radial
        cx, cy = rng.uniform(0, w / max(w, h)), rng.uniform(0, h / max(w, h))
        t = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) / rng.uniform(0.5, 1.5)
    else:
        ang = rng.uniform(0, 2 * math.pi)
        t = xs * math.cos(ang) + ys * math.sin(ang)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    t = np.clip(t, 0, 1)[..., None]
    return a * (1 - t) + b * t


def _value_noise(rng: np.random.Generator, w: int, h: int, cells: int) -> np.ndarray:
    """Random colours on a coarse grid, bilinearly interpolated: blotchy textures of a chosen scale."""
    grid = rng.uniform(0, 255, size=(cells + 2, cells + 2, 3)).astype(np.float32)
    ys = (np.arange(h, dtype=np.float32) + 0.5) / h * cells
    xs = (np.arange(w, dtype=np.float32) + 0.5) / w * cells
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    g00, g01 = grid[y0][:, x0], grid[y0][:, x0 + 1]
    g10, g11 = grid[y0 + 1][:, x0], grid[y0 + 1][:, x0 + 1]
    return (g00 * (1 - fx) + g01 * fx) * (1 - fy) + (g10 * (1 - fx) + g11 * fx) * fy


def _texture(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    choice = rng.integers(0, 3)
    if choice == 0:
        return _value_noise(rng, w, h, int(rng.integers(2, 17)))
    xs, ys = _grid(w, h)
    a, b = _color(rng), _color(rng)
    period = rng.uniform(0.04, 0.3)
    ang = rng.uniform(0, math.pi)
    u = (xs * math.cos(ang) + ys * math.sin(ang)) / period
    if choice == 1:  # stripes, hard or soft
        t = 0.5 + 0.5 * np.sin(2 * math.pi * u)
        if rng.random() < 0.5:
            t = (t > 0.5).astype(np.float32)
    else:  # checkers
        v = (-xs * math.sin(ang) + ys * math.cos(ang)) / period
        t = ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)
    return a * (1 - t[..., None]) + b * t[..., None]


def _ground(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A sky gradient over a straight horizon and a (sometimes textured) ground plane."""
    ys = (np.arange(h, dtype=np.float32) + 0.5) / h
    horizon = rng.uniform(0.3, 0.8)
    sky_top, sky_low = _color(rng), _color(rng)
    g_far, g_near = _color(rng), _color(rng)
    t_sky = np.clip(ys / horizon, 0, 1)[:, None, None]
    t_gnd = np.clip((ys - horizon) / max(1 - horizon, 1e-3), 0, 1)[:, None, None]
    img = np.where((ys < horizon)[:, None, None], sky_top * (1 - t_sky) + sky_low * t_sky,
                   g_far * (1 - t_gnd) + g_near * t_gnd)
    img = np.broadcast_to(img, (h, w, 3)).astype(np.float32).copy()
    if rng.random() < 0.5:
        below = ys >= horizon
        img[below] += (_value_noise(rng, w, h, int(rng.integers(4, 16)))[below] - 127.5) * rng.uniform(0.1, 0.4)
    return img


def _fields(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Held out: sums of random low-frequency sinusoids plus Gaussian blobs, per channel."""
    xs, ys = _grid(w, h)
    img = np.zeros((h, w, 3), np.float32) + _color(rng, 40, 215)
    for _ in range(int(rng.integers(3, 7))):
        fx, fy = rng.uniform(-3, 3, size=2)
        phase = rng.uniform(0, 2 * math.pi)
        img += np.sin(2 * math.pi * (fx * xs + fy * ys) + phase)[..., None] * rng.uniform(-45, 45, size=3)
    for _ in range(int(rng.integers(1, 5))):
        cx, cy, s = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.3)
        img += np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * s * s))[..., None] * rng.uniform(-90, 90, size=3)
    return img


def background(kind: str, rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """One background picture of ``kind`` (a train or held-out kind; ``black`` is all zeros)."""
    if kind == "black":
        return np.zeros((h, w, 3), np.float32)
    if kind == "flat":
        return np.zeros((h, w, 3), np.float32) + _color(rng)
    if kind == "gradient":
        return _gradient(rng, w, h)
    if kind == "noise":
        base = _gradient(rng, w, h) if rng.random() < 0.5 else np.zeros((h, w, 3), np.float32) + _color(rng)
        sigma = rng.uniform(4, 40)
        mono = rng.random() < 0.5
        noise = rng.normal(0, sigma, size=(h, w, 1 if mono else 3)).astype(np.float32)
        return base + noise
    if kind == "texture":
        return _texture(rng, w, h)
    if kind == "ground":
        return _ground(rng, w, h)
    if kind == "fields":
        return _fields(rng, w, h)
    raise ValueError(f"background kind {kind!r}: expected black, {', '.join(TRAIN_KINDS)} or fields")


def _supersampled_grid(w: int, h: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h * s, 0:w * s].astype(np.float32)
    return (xs + 0.5) / s, (ys + 0.5) / s


def coverage(shape: str, w: int, h: int, cx: float, cy: float, r: float, s: int = 2) -> np.ndarray:
    """Anti-aliased coverage (H, W) in [0, 1] of one shape (supersampled ``s`` x ``s``)."""
    xs, ys = _supersampled_grid(w, h, s)
    mask = _coverage(shape, xs, ys, cx, cy, r).astype(np.float32)
    return mask.reshape(h, s, w, s).mean(axis=(1, 3))


def draw_strokes(rng: np.random.Generator, img: np.ndarray, n: int) -> np.ndarray:
    """Thin anti-aliased strokes (straight or gently curved, 0.6-2 px wide) of random colours."""
    h, w = img.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    for _ in range(n):
        p0, p1 = rng.uniform(0, 1, 2) * (w, h), rng.uniform(0, 1, 2) * (w, h)
        bend = rng.normal(0, 0.15 * max(w, h), 2) if rng.random() < 0.5 else np.zeros(2)
        pts = np.array([p0 + (p1 - p0) * t + bend * 4 * t * (1 - t) for t in np.linspace(0, 1, 24)])
        dist = np.full((h, w), np.inf, np.float32)
        for a, b in zip(pts[:-1], pts[1:]):
            ab = b - a
            t = np.clip(((xs - a[0]) * ab[0] + (ys - a[1]) * ab[1]) / max(float(ab @ ab), 1e-6), 0, 1)
            dist = np.minimum(dist, np.hypot(xs - a[0] - t * ab[0], ys - a[1] - t * ab[1]))
        alpha = np.clip(rng.uniform(0.3, 1.0) + 0.5 - dist, 0, 1)[..., None]
        img = img * (1 - alpha) + _color(rng) * alpha
    return img


def _pan_crops(big: np.ndarray, w: int, h: int, offsets: np.ndarray) -> np.ndarray:
    """Frames of a camera pan: bilinear crops of ``big`` at sub-pixel ``offsets`` (T, 2) = (x, y)."""
    out = np.empty((len(offsets), h, w, 3), np.float32)
    for t, (ox, oy) in enumerate(offsets):
        x0, y0 = int(math.floor(ox)), int(math.floor(oy))
        fx, fy = ox - x0, oy - y0
        a = big[y0:y0 + h + 1, x0:x0 + w + 1]
        top = a[:h, :w] * (1 - fx) + a[:h, 1:w + 1] * fx
        bot = a[1:h + 1, :w] * (1 - fx) + a[1:h + 1, 1:w + 1] * fx
        out[t] = top * (1 - fy) + bot * fy
    return out


def _pan_offsets(direction: str | None, frames: int, margin: int, speed: float) -> np.ndarray:
    """Window position per frame; the background moves opposite to the camera."""
    start = np.array([margin / 2, margin / 2], np.float32)
    if direction is None:
        return np.repeat(start[None], frames, axis=0)
    step = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[direction]
    travel = np.arange(frames, dtype=np.float32)[:, None] * speed * np.asarray(step, np.float32)
    if direction in ("left", "up"):  # start at the far side so the window stays inside
        start = start + np.asarray(step, np.float32) * -(margin / 2 - 1)
    else:
        start = start - np.asarray(step, np.float32) * (margin / 2 - 1)
    return start + travel


def _moving_background(rng: np.random.Generator, kind: str, w: int, h: int, frames: int,
                       pan: str | None, speed_px: float, strokes: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames (T,H,W,3), the first frame's background) for a static or panning camera."""
    margin = int(math.ceil(speed_px * frames)) + 4 if pan else 0
    big = background(kind, rng, w + margin, h + margin)
    if strokes:
        big = draw_strokes(rng, big, strokes)
    if not pan:
        return np.repeat(big[None], frames, axis=0), big
    bg = _pan_crops(big, w, h, _pan_offsets(pan, frames, margin, speed_px))
    return bg, bg[0]


def composite(frames: np.ndarray, objects: list[ShapeObject], colors: list[np.ndarray],
              shading: list[bool] | None = None) -> np.ndarray:
    """Draw objects over ``frames`` in order (later ones occlude earlier ones), anti-aliased."""
    t_n, h, w = frames.shape[:3]
    out = frames.copy()
    xs, ys = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    for i, (obj, col) in enumerate(zip(objects, colors)):
        for t in range(t_n):
            cx, cy = obj.trajectory[t]
            a = coverage(obj.shape, w, h, cx, cy, obj.radius)[..., None]
            paint = np.broadcast_to(col, (h, w, 3))
            if shading and shading[i]:  # lit from the top left, like a ball
                d = np.clip(((ys - cy + 0.4 * obj.radius) ** 2 + (xs - cx + 0.4 * obj.radius) ** 2)
                            / (1.6 * obj.radius) ** 2, 0, 1)
                paint = col * (1.15 - 0.55 * d)[..., None]
            out[t] = out[t] * (1 - a) + paint * a
    return out


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def _named_objects(rng: np.random.Generator, w: int, h: int, frames: int, n: int) -> list[ShapeObject]:
    colors = rng.choice(list(COLORS), size=n, replace=False)
    objects = []
    for i in range(n):
        size = str(rng.choice(list(SIZES)))
        obj = ShapeObject(shape=str(rng.choice(SHAPES)), color=str(colors[i]), size=size,
                          speed=str(rng.choice(list(SPEEDS))), direction=str(rng.choice(list(DIRECTIONS))),
                          radius=SIZES[size] * min(w, h))
        _simulate(rng, w, h, frames, obj)
        objects.append(obj)
    return objects


def scene_clip(rng: np.random.Generator, width: int = 64, height: int = 64, frames: int = 33,
               kinds: tuple[str, ...] = TRAIN_KINDS, n_objects: int | None = None,
               pan: str | None | bool = None) -> Clip:
    """A captioned clip: a background of ``kinds``, 1-3 named objects (occluding each other in
    drawing order), sometimes thin strokes and a slow captioned camera pan.

    ``pan``: None = random (30% of clips pan), False = never, or a direction. The caption keeps the
    moving-shapes grammar, plus " with the camera panning <dir>" when the camera moves.
    """
    if pan is None:
        pan = str(rng.choice(PAN_DIRECTIONS)) if rng.random() < 0.3 else False
    if n_objects is None:
        n_objects = int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2])) if not pan else int(rng.integers(1, 3))
    kind = str(rng.choice(kinds))
    speed_px = PAN_SPEED * min(width, height)
    strokes = int(rng.integers(1, 4)) if rng.random() < 0.25 else 0
    bg_frames, bg0 = _moving_background(rng, kind, width, height, frames, pan or None, speed_px, strokes)
    objects = _named_objects(rng, width, height, frames, n_objects)
    colors = [np.clip(np.asarray(COLORS[o.color], np.float32) + rng.normal(0, 12, 3), 0, 255) for o in objects]
    pixels = composite(bg_frames, objects, colors)
    caption = " and ".join(o.phrase() for o in objects) + (f" with the camera panning {pan}" if pan else "")
    return Clip(frames=to_uint8(pixels), caption=caption, objects=objects, background=kind,
                static_background=None if pan else to_uint8(bg0))


def vae_clip(rng: np.random.Generator, width: int, height: int, frames: int) -> np.ndarray:
    """uint8 (T, H, W, 3) for autoencoder training: any colour, any train kind, strokes, pans.

    A fifth are the old shapes-on-black clips (what `pusa eval`'s in-distribution cases look like).
    """
    if rng.random() < 0.2:
        return random_clip(rng, width, height, frames).frames
    kind = str(rng.choice(TRAIN_KINDS))
    pan = str(rng.choice(PAN_DIRECTIONS)) if rng.random() < 0.4 else None
    speed_px = rng.uniform(0.2, 1.5)
    strokes = int(rng.integers(1, 6)) if rng.random() < 0.5 else 0
    bg_frames, _ = _moving_background(rng, kind, width, height, frames, pan, speed_px, strokes)
    n = int(rng.integers(0, 5))
    objects = []
    for _ in range(n):
        obj = ShapeObject(shape=str(rng.choice(SHAPES)), color="", size="", speed="slow",
                          direction=str(rng.choice(list(DIRECTIONS))),
                          radius=rng.uniform(0.04, 0.25) * min(width, height))
        _simulate(rng, width, height, frames, obj)
        objects.append(obj)
    pixels = composite(bg_frames, objects, [_color(rng) for _ in objects],
                       shading=[bool(rng.random() < 0.3) for _ in objects])
    if rng.random() < 0.15:  # sensor-like noise over everything
        pixels = pixels + rng.normal(0, rng.uniform(2, 12), size=pixels.shape).astype(np.float32)
    return to_uint8(pixels)


# --- held-out kinds (evaluation only) ---

PHOTO_FIRST = dict(sky=((20, 30, 90), (40, 60, 130)), ground=((40, 140, 50), (30, 110, 40)), ball="red")


def _photo_background(rng: np.random.Generator, w: int, h: int, first: bool) -> np.ndarray:
    """A photo-like landscape: sky gradient, curved hills, a soft sun (none in the issue's picture)."""
    xs, ys = _grid(w, h)
    hy = h / max(w, h)
    if first:
        (sky_top, sky_low), (g_far, g_near) = [np.asarray(c, np.float32) for c in PHOTO_FIRST["sky"]], \
                                              [np.asarray(c, np.float32) for c in PHOTO_FIRST["ground"]]
        horizon = np.full_like(xs, 0.6 * hy)
    else:
        sky_top, sky_low = _color(rng, 20, 200), _color(rng, 80, 255)
        g_far, g_near = _color(rng, 20, 180), _color(rng, 10, 140)
        horizon = hy * (rng.uniform(0.45, 0.7) + 0.06 * np.sin(2 * math.pi * (rng.uniform(0.5, 2) * xs
                                                                                + rng.uniform(0, 1))))
    t_sky = np.clip(ys / horizon, 0, 1)[..., None]
    t_gnd = np.clip((ys - horizon) / np.maximum(hy - horizon, 1e-3), 0, 1)[..., None]
    sky = sky_top * (1 - t_sky) + sky_low * t_sky
    if not first:
        cx, cy, r = rng.uniform(0.15, 0.85), rng.uniform(0.1, 0.35) * hy, rng.uniform(0.05, 0.1)
        d = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
        sun = np.clip((r - d) / 0.01, 0, 1) + 0.5 * np.exp(-(d / (3 * r)) ** 2)
        sky = sky + sun[..., None] * (np.asarray((255, 230, 160), np.float32) - sky) * 0.9
    ground = g_far * (1 - t_gnd) + g_near * t_gnd
    a = np.clip((ys - horizon) * max(w, h) + 0.5, 0, 1)[..., None]  # anti-aliased horizon
    return sky * (1 - a) + ground * a


def _studio_picture(w: int, h: int, sun_y: float, sky: tuple[int, int, int], sun: bool = True) -> np.ndarray:
    """The studio's example scene (256 px: sky, sun disc at ``sun_y``, sea band), fitted to w x h."""
    from PIL import Image, ImageDraw

    from pusa.media import fit_image

    img = Image.new("RGB", (256, 256), sky)
    draw = ImageDraw.Draw(img)
    if sun:
        draw.ellipse((96, sun_y, 160, sun_y + 64), fill=(255, 200, 40))
    draw.rectangle((0, 180, 256, 256), fill=(30, 90, 160))
    return np.asarray(fit_image(img, w, h), dtype=np.float32)


STUDIO_PICTURES = ((150, (250, 140, 90)), (40, (120, 180, 240)), (90, (200, 160, 120)))


def held_out_clip(kind: str, index: int, rng: np.random.Generator, width: int, height: int,
                  frames: int) -> Clip:
    """One out-of-distribution i2v case: a held-out background with one named object moving on it.

    ``studio`` cases are the studio's example pictures (frame 0 is exactly the picture): their
    "object" is the sun (a large yellow circle), rising slowly from behind the sea.
    """
    if kind == "studio":
        sun_y, sky = STUDIO_PICTURES[index % len(STUDIO_PICTURES)]
        scale = min(width, height) / 256
        obj = ShapeObject(shape="circle", color="yellow", size="large", speed="slow", direction="up",
                          radius=32 * scale)
        step = SPEEDS["slow"] * 256  # the studio picture's own pixels per frame
        tops = [max(sun_y - step * t, 0.0) for t in range(frames)]  # the sun rises until it meets the top
        obj.trajectory = [(width / 2, (top + 32) * scale + (height - min(width, height)) / 2) for top in tops]
        pictures = [to_uint8(_studio_picture(width, height, top, sky)) for top in tops]
        return Clip(frames=np.stack(pictures), caption=obj.phrase(), objects=[obj], background=kind,
                    static_background=to_uint8(_studio_picture(width, height, sun_y, sky, sun=False)))
    if kind == "fields":
        bg = _fields(rng, width, height)
    elif kind == "photo":
        bg = _photo_background(rng, width, height, first=index == 0)
    else:
        raise ValueError(f"held-out kind {kind!r}: expected one of {', '.join(HELD_OUT_KINDS)}")
    obj = _named_objects(rng, width, height, frames, 1)[0]
    if kind == "photo" and index == 0:  # the picture: a red ball on the green ground
        obj.color, obj.shape, obj.size = PHOTO_FIRST["ball"], "circle", "large"
        obj.radius = SIZES["large"] * min(width, height)
        _simulate(rng, width, height, frames, obj)
    col = np.asarray(COLORS[obj.color], np.float32)
    pixels = composite(np.repeat(bg[None], frames, axis=0), [obj], [col], shading=[kind == "photo"])
    return Clip(frames=to_uint8(pixels), caption=obj.phrase(), objects=[obj], background=kind,
                static_background=to_uint8(bg))


def still_picture(kind: str, rng: np.random.Generator, width: int, height: int, index: int = 0) -> np.ndarray:
    """One uint8 picture of any kind (train, held-out or ``black`` shapes), for VAE round-trip PSNR."""
    if kind in HELD_OUT_KINDS:
        return held_out_clip(kind, index, rng, width, height, 1).frames[0]
    if kind == "black":
        return random_clip(rng, width, height, 1).frames[0]
    return scene_clip(rng, width, height, 1, kinds=(kind,), pan=False).frames[0]
