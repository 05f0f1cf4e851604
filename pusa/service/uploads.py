"""Checking and storing uploaded inputs: size limits (413) and readability (422) before queueing.

Files are copied in chunks with a byte budget (so a huge upload is refused without being read
whole), checked for pixels / duration, and only then moved into ``uploads/<job id>/`` with
``os.replace`` so a job never sees a half-written file.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pusa.service.config import UploadLimits

log = logging.getLogger(__name__)
# how an unreadable upload is refused (the studio matches these to say it in the page's language)
NOT_AN_IMAGE = "this file is not an image we can read"
NOT_A_VIDEO = "this file is not a video we can read"

IMAGE_SUFFIXES = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "bmp": ".bmp", "gif": ".gif", "tiff": ".tiff"}
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v", ".gif")
CHUNK = 1024 * 1024


class UploadRejected(Exception):
    """An upload is refused; ``status`` is 413 (too large) or 422 (unreadable / wrong kind)."""

    def __init__(self, field: str, message: str, status: int):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


@dataclass
class StagedFile:
    """An upload copied into the staging dir and checked; ``suffix`` is the one to store it under."""

    path: Path
    suffix: str


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def copy_limited(src: BinaryIO, staging_dir: Path, field: str, limits: UploadLimits) -> Path:
    """Copy a stream into a new staging file, refusing (413) once it passes ``limits.max_bytes``."""
    staging_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=staging_dir, prefix="up-")
    written = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = src.read(CHUNK)
                if not chunk:
                    break
                written += len(chunk)
                if written > limits.max_bytes:
                    raise UploadRejected(field, f"file is larger than the limit of {_mb(limits.max_bytes)}", 413)
                out.write(chunk)
        if written == 0:
            raise UploadRejected(field, "file is empty", 422)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def check_image(path: Path, field: str, limits: UploadLimits) -> StagedFile:
    """Refuse images that are not images (422) or have too many pixels (413), without decoding them.

    PIL's own decompression-bomb guard (``Image.MAX_IMAGE_PIXELS``) is left as it is for the whole
    process; it refuses at open anything over twice its limit, which we answer as 413 too.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            fmt = (im.format or "png").lower()
            if w * h > limits.max_pixels:
                raise UploadRejected(field, f"image is {w}x{h} = {w * h} pixels; the limit is {limits.max_pixels}", 413)
            im.verify()
    except UploadRejected:
        raise
    except Image.DecompressionBombError:
        raise UploadRejected(field, f"image has far more pixels than the limit of {limits.max_pixels}", 413) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        # the library's message names the staging file and its type is jargon: one sentence, the cause in the log
        log.info("upload %s: not a readable image (%s)", field, type(e).__name__)
        raise UploadRejected(field, f"{NOT_AN_IMAGE}; upload a PNG, JPEG or WebP file",
                             422) from None
    return StagedFile(path, IMAGE_SUFFIXES.get(fmt, ".png"))


def _is_still_image(container: Any) -> bool:
    """FFmpeg opens a PNG or JPEG as a one-frame "video" (image2 / *_pipe demuxers): not a video for us."""
    names = set((container.format.name or "").split(","))
    return bool(names & {"image2", "apng"}) or any(n.endswith("_pipe") for n in names)


def check_video(path: Path, field: str, limits: UploadLimits, original_name: str | None) -> StagedFile:
    """Refuse what is not a playable video (422: no stream, a still image, no frame), too many pixels or too long (413)."""
    import av

    try:
        with av.open(str(path)) as container:
            streams = container.streams.video
            if not streams:
                raise UploadRejected(field, "the file has no video stream", 422)
            if _is_still_image(container):
                raise UploadRejected(field, "the file is a still image, not a video; upload an MP4 or WebM file "
                                            "(or use the image tasks)", 422)
            stream = streams[0]
            w, h = stream.codec_context.width, stream.codec_context.height
            if w * h > limits.max_pixels:
                raise UploadRejected(field, f"video is {w}x{h} = {w * h} pixels per frame; the limit is "
                                            f"{limits.max_pixels}", 413)
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            if duration is not None and duration > limits.max_video_seconds:
                raise UploadRejected(field, f"video is {duration:.1f} s long; the limit is "
                                            f"{limits.max_video_seconds:g} s", 413)
            # decode the first frame (a header can promise a stream that holds none); with no duration
            # in the header, count frames, bounded by the limit at a generous frame rate
            n = 0
            cap = int(limits.max_video_seconds * 120) + 1 if duration is None else 1
            for _ in container.decode(stream):
                n += 1
                if n >= cap:
                    break
            if n == 0:
                raise UploadRejected(field, "the video has no frames", 422)
            if duration is None and n >= cap:
                raise UploadRejected(field, f"video is longer than the limit of {limits.max_video_seconds:g} s", 413)
    except UploadRejected:
        raise
    except Exception as e:  # av raises many error types for garbage input; their text names the staging file
        log.info("upload %s: not a readable video (%s)", field, type(e).__name__)
        raise UploadRejected(field, f"{NOT_A_VIDEO}; upload an MP4 or WebM file",
                             422) from None
    suffix = Path(original_name or "").suffix.lower()
    return StagedFile(path, suffix if suffix in VIDEO_SUFFIXES else ".mp4")


def stage_path(src: Path, staging_dir: Path, field: str, limits: UploadLimits) -> Path:
    """Copy a file already on disk (e.g. a Gradio upload) into staging under the same byte limit."""
    try:
        size = src.stat().st_size
    except OSError as e:
        log.info("upload %s: cannot read the staged file (%s)", field, type(e).__name__)
        raise UploadRejected(field, "the uploaded file could not be read; upload it again", 422) from None
    if size > limits.max_bytes:
        raise UploadRejected(field, f"file is larger than the limit of {_mb(limits.max_bytes)}", 413)
    with open(src, "rb") as f:
        return copy_limited(f, staging_dir, field, limits)


def commit(staged: list[tuple[StagedFile, str]], job_dir: Path) -> list[Path]:
    """Move staged files into the job's upload dir under their final names (atomic per file)."""
    job_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for sf, stem in staged:
        dest = job_dir / f"{stem}{sf.suffix}"
        os.replace(sf.path, dest)
        out.append(dest)
    return out


def discard(staged: list[StagedFile]) -> None:
    for sf in staged:
        sf.path.unlink(missing_ok=True)


def copy_inputs(files: list[str], data_dir: Path, job_dir: Path) -> list[str]:
    """Copy another job's inputs for a resubmission (temp file + os.replace), keeping names."""
    job_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for rel in files:
        src = data_dir / rel
        dest = job_dir / src.name
        fd, tmp = tempfile.mkstemp(dir=job_dir, prefix=".tmp-")
        os.close(fd)
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
        out.append(dest.relative_to(data_dir).as_posix())
    return out
