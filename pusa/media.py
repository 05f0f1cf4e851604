"""Images and videos in, MP4 or PNG frames out.

Inputs are fitted to the target size by center-crop (default) or letterbox, never stretched (the
original demo stretched everything to 1280x720). Outputs are written to a temporary name and moved
into place, so an error or an interrupt never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pusa.atomic import atomic_file
from pusa.errors import MediaError

# Largest input image or video frame the engine decodes (width x height): 8K, far above any model's size.
MAX_INPUT_PIXELS = 7680 * 4320


def load_image(source: Any, field: str = "image", max_pixels: int = MAX_INPUT_PIXELS) -> Image.Image:
    """An RGB image with EXIF orientation applied and transparency flattened onto white.

    The pixel count is checked from the header before decoding, per call (PIL's process-wide
    ``MAX_IMAGE_PIXELS`` guard is left as it is), so a tiny file cannot expand into gigabytes.
    """
    if isinstance(source, Image.Image):
        img = source
    else:
        path = Path(source)
        if not path.is_file():
            raise MediaError(f"{field}: file not found: {path.name}")
        try:
            img = Image.open(path)
            w, h = img.size
            if w * h > max_pixels:
                raise MediaError(f"{field}: image is {w}x{h} = {w * h:,} pixels; the limit is {max_pixels:,}")
            img.load()
        except Image.DecompressionBombError:
            raise MediaError(f"{field}: image has more pixels than the limit of {max_pixels:,}") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise MediaError(f"{field}: {path.name} is not an image we can read (PNG, JPEG or WebP)") from None
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "P") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def pixels(frames: list[Image.Image]) -> "torch.Tensor":
    """PIL frames -> ``(1, 3, T, H, W)`` float32 in [-1, 1], the VAE's input."""
    import torch

    arr = np.stack([np.asarray(f, dtype=np.uint8) for f in frames])  # T, H, W, 3
    t = torch.from_numpy(arr).float().div_(127.5).sub_(1.0)
    return t.permute(3, 0, 1, 2).unsqueeze(0).contiguous()


def fit_image(img: Image.Image, width: int, height: int, mode: str = "crop") -> Image.Image:
    """Resize keeping the aspect ratio: ``crop`` fills and center-crops, ``letterbox`` pads with black."""
    if mode == "crop":
        return ImageOps.fit(img, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    if mode == "letterbox":
        inner = ImageOps.contain(img, (width, height), method=Image.Resampling.LANCZOS)
        canvas = Image.new("RGB", (width, height), (0, 0, 0))
        canvas.paste(inner, ((width - inner.width) // 2, (height - inner.height) // 2))
        return canvas
    raise MediaError(f"fit: {mode!r} is not allowed; expected 'crop' or 'letterbox'")


def read_video_frames(source: str | Path, max_frames: int | None = None, field: str = "video",
                      fit: tuple[int, int, str] | None = None, max_pixels: int = MAX_INPUT_PIXELS
                      ) -> list[Image.Image]:
    """Decode up to ``max_frames`` frames of any video PyAV can read, as RGB images.

    With ``fit=(width, height, mode)`` each frame is fitted as soon as it is decoded, so memory
    follows the output size, never the source's (a 4096x4096 input costs one frame at that size).
    """
    import av

    path = Path(source)
    if not path.is_file():
        raise MediaError(f"{field}: file not found: {path.name}")
    frames: list[Image.Image] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{field}: {path.name} has no video stream")
            ctx = container.streams.video[0].codec_context
            if ctx.width * ctx.height > max_pixels:
                raise MediaError(f"{field}: frames are {ctx.width}x{ctx.height} = {ctx.width * ctx.height:,} "
                                 f"pixels; the limit is {max_pixels:,}")
            for frame in container.decode(video=0):
                img = frame.to_image().convert("RGB")
                frames.append(fit_image(img, *fit) if fit is not None else img)
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError, ValueError):
        raise MediaError(f"{field}: {path.name} is not a video we can read (MP4, WebM, MOV)") from None
    if not frames:
        raise MediaError(f"{field}: {path.name} contains no frames")
    return frames


def video_info(source: str | Path) -> dict[str, float]:
    """Frame count, size, fps and duration, as decoded (for checking uploads and reading outputs)."""
    import av

    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(video=0))
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        return {"frames": count, "width": stream.codec_context.width, "height": stream.codec_context.height,
                "fps": fps, "duration": count / fps if fps else 0.0}


def to_uint8_frames(frames: Any) -> np.ndarray:
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 of shape (T, H, W, 3), got {arr.dtype} {arr.shape}")
    return arr


def _atomic_target(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise MediaError(f"output: {path} already exists; choose another name or allow overwriting")
    path.parent.mkdir(parents=True, exist_ok=True)


def _chunks(frames: np.ndarray | Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """One array ``(T, H, W, 3)`` or a stream of such chunks, as a stream."""
    if isinstance(frames, np.ndarray):
        yield to_uint8_frames(frames)
        return
    for chunk in frames:
        yield to_uint8_frames(chunk)


def write_mp4(frames: np.ndarray | Iterable[np.ndarray], path: str | Path, fps: int,
              metadata: dict[str, Any] | None = None, overwrite: bool = False, crf: int = 17) -> Path:
    """H.264/yuv420p MP4 (plays in browsers), settings embedded as the container comment.

    ``frames`` may be a stream of chunks (a long video being decoded): each is encoded as it comes.
    """
    import av

    path = Path(path)
    _atomic_target(path, overwrite)
    with atomic_file(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        if metadata:
            container.metadata["comment"] = json.dumps(metadata, sort_keys=True)
        stream = None
        for chunk in _chunks(frames):
            if stream is None:
                stream = container.add_stream("libx264", rate=int(fps))
                stream.width, stream.height = chunk.shape[2], chunk.shape[1]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "preset": "medium"}
            for frame in chunk:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
        if stream is None:
            raise MediaError("output: no frames to write")
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_png_frames(frames: np.ndarray | Iterable[np.ndarray], folder: str | Path,
                     metadata: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
                     overwrite: bool = False) -> Path:
    """Lossless PNG frames ``frame_00000.png ...`` plus ``settings.json``, moved into place whole."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise MediaError(f"output: folder {folder} is not empty; choose another folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
    try:
        i = 0
        for chunk in _chunks(frames):
            for frame in chunk:
                Image.fromarray(frame).save(tmp / f"frame_{i:05d}.png")
                i += 1
        if callable(metadata):  # asked after the frames: a streamed result's timings are complete then
            metadata = metadata()
        if metadata:
            (tmp / "settings.json").write_text(json.dumps(metadata, indent=2, sort_keys=True))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def write_json(data: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    return path


def is_frame_folder_target(path: str | Path) -> bool:
    """An ``--output`` that names a folder (existing, or ending in a slash, or without suffix)."""
    text = str(path)
    p = Path(text)
    return p.is_dir() or text.endswith(("/", os.sep)) or p.suffix == ""


def save_video(result: Any, path: str | Path, overwrite: bool = False) -> Path:
    """Write a ``GenerationResult`` as MP4 + JSON sidecar, or as PNG frames if ``path`` is a folder.

    A streamed result is decoded while it is written; the sidecar, written last, then also holds the
    decode time.
    """
    if is_frame_folder_target(path):
        return write_png_frames(result.iter_frames(), path, result.metadata, overwrite)
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise MediaError(f"output: {path.name} must end in .mp4 (or name a folder for PNG frames)")
    sidecar = path.with_suffix(".json")
    if sidecar.exists() and not overwrite:
        raise MediaError(f"output: {sidecar} already exists; choose another name")
    out = write_mp4(result.iter_frames(), path, result.fps, result.metadata(), overwrite)
    write_json(result.metadata(), sidecar)
    return out


def iter_images(items: Iterable[Any] | None) -> list[Image.Image]:
    return [load_image(x, field=f"images[{i}]") for i, x in enumerate(items or [])]
