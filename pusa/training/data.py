"""Training data: a folder of videos with captions, turned once into cached latents and text embeddings.

Why cache: the VAE and the UMT5 are frozen, so encoding every clip and caption once (and reusing
it for every epoch, every resume and every later run with the same model) removes most of the cost
of a training step and lets the encoders leave memory while the DiT trains.

Caption files (in the data folder, or given explicitly): ``metadata.jsonl`` (one object per line)
or ``metadata.csv`` / ``captions.csv`` (header row). The video column may be named ``file``,
``video`` or ``path`` (relative to the caption file), the caption column ``caption``, ``text`` or
``prompt``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pusa.errors import InputError
from pusa.latent_codec import LatentCodec
from pusa.text import encode_prompts

log = logging.getLogger(__name__)

VIDEO_KEYS = ("file", "video", "path")
CAPTION_KEYS = ("caption", "text", "prompt")
CAPTION_FILES = ("metadata.jsonl", "captions.jsonl", "metadata.csv", "captions.csv")


@dataclass(frozen=True)
class Sample:
    """One training clip: its video file and caption."""

    video: Path
    caption: str


def _pick(row: dict, keys: tuple[str, ...], what: str, where: str) -> str:
    for k in keys:
        if row.get(k) not in (None, ""):
            return str(row[k])
    raise InputError(f"{where}: no {what} column (expected one of {', '.join(keys)})")


def find_caption_file(data: str | Path) -> Path:
    """The caption file of a data folder (or ``data`` itself when it is a file)."""
    p = Path(data).expanduser()
    if p.is_file():
        return p
    if not p.is_dir():
        raise InputError(f"data: {p} is neither a folder nor a caption file")
    for name in CAPTION_FILES:
        if (p / name).is_file():
            return p / name
    raise InputError(f"data: {p} has no caption file; expected one of {', '.join(CAPTION_FILES)}")


def read_samples(data: str | Path) -> list[Sample]:
    """Parse the caption file into samples, checking that every video exists."""
    path = find_caption_file(data)
    rows: list[dict] = []
    if path.suffix == ".jsonl":
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise InputError(f"{path}:{n}: not valid JSON ({e})") from None
    elif path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    else:
        raise InputError(f"{path}: caption file must be .jsonl or .csv")
    samples = []
    for n, row in enumerate(rows, 1):
        where = f"{path.name} entry {n}"
        video = (path.parent / _pick(row, VIDEO_KEYS, "video", where)).resolve()
        if not video.is_file():
            raise InputError(f"{where}: video not found: {video}")
        samples.append(Sample(video, _pick(row, CAPTION_KEYS, "caption", where)))
    if not samples:
        raise InputError(f"{path}: no samples")
    return samples


def read_clip(path: Path, frames: int, width: int, height: int) -> torch.Tensor:
    """First ``frames`` frames of a video, centre-cropped and resized, as (3, T, H, W) in [-1, 1].

    Clips shorter than ``frames`` are an error rather than silently padded: a padded clip would
    teach the model frozen endings.
    """
    import av
    from PIL import Image

    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            img = frame.to_image().convert("RGB")
            if img.size != (width, height):
                scale = max(width / img.width, height / img.height)
                img = img.resize((max(width, round(img.width * scale)), max(height, round(img.height * scale))),
                                 Image.BICUBIC)
                left, top = (img.width - width) // 2, (img.height - height) // 2
                img = img.crop((left, top, left + width, top + height))
            out.append(np.asarray(img, dtype=np.uint8))
            if len(out) == frames:
                break
    if len(out) < frames:
        raise InputError(f"{path}: has {len(out)} frames, training needs {frames}")
    arr = torch.from_numpy(np.stack(out)).float().div_(127.5).sub_(1.0)
    return arr.permute(3, 0, 1, 2).contiguous()


def _fingerprint(layout, width: int, height: int, frames: int, negatives: tuple[str, ...]) -> str:
    """Cache key: the encoders' files and the clip geometry.

    Files up to 64 MB are hashed by content (so a copied model folder reuses the cache); bigger
    ones by name, size and mtime (hashing a 10 GB T5 on every run would cost minutes).
    """
    h = hashlib.sha256()
    for p in (layout.vae, layout.text_encoder, layout.tokenizer):
        files = sorted(p.rglob("*")) if p.is_dir() else [p]
        for f in files:
            if f.is_file():
                st = f.stat()
                if st.st_size <= 64 << 20:
                    h.update(f.name.encode() + hashlib.sha256(f.read_bytes()).digest())
                else:
                    h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    h.update(f"{width}x{height}x{frames}:{layout.family.text_len}".encode())
    h.update(json.dumps(list(negatives)).encode())
    return h.hexdigest()[:16]


class LatentCache:
    """Per-sample ``.pt`` files holding the normalised latent and the trimmed text embedding.

    Normalised means ``(z - latents_mean) / latents_std`` with the VAE's per-channel statistics,
    the space the DiT works in. Text embeddings are stored only up to the prompt's length and
    zero-padded to ``text_len`` when loaded (identical to the engine's zeroed padding).
    """

    def __init__(self, folder: Path, count: int, text_len: int):
        self.folder = folder
        self.count = count
        self.text_len = text_len
        self._memory: dict[int, dict] = {}
        self.null_contexts: torch.Tensor = torch.load(folder / "null.pt", weights_only=True)["contexts"]

    def __len__(self) -> int:
        return self.count

    def get(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(latent (C, F, h, w) float32, context (text_len, D) float32)`` of sample ``i``."""
        item = self._memory.get(i)
        if item is None:
            item = torch.load(self.folder / f"{i:07d}.pt", weights_only=True)
            if len(self._memory) < 20000:
                self._memory[i] = item
        ctx = item["context"].float()
        full = torch.zeros(self.text_len, ctx.shape[-1])
        full[: ctx.shape[0]] = ctx
        return item["latent"].float(), full

    @classmethod
    def build(cls, model_dir: str | Path, data: str | Path, *, width: int, height: int, frames: int,
              cache_dir: str | Path | None = None, negative_prompts: tuple[str, ...] = ("",)) -> "LatentCache":
        """Encode every sample once (skipping ones already cached) and return the cache.

        ``negative_prompts`` are also encoded: caption dropout replaces a caption by one of them so
        classifier-free guidance has an unconditional branch to contrast with.
        """
        from pusa.loading.components import load_text_encoder, load_tokenizer, load_vae
        from pusa.loading.layout import detect_layout

        layout = detect_layout(model_dir)
        samples = read_samples(data)
        root = Path(cache_dir) if cache_dir else find_caption_file(data).parent / ".pusa_cache"
        folder = root / _fingerprint(layout, width, height, frames, tuple(negative_prompts))
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / "manifest.json"
        expected = [f"{s.video}|{s.caption}" for s in samples]
        done = json.loads(manifest.read_text()) if manifest.is_file() else {}
        todo = [i for i, key in enumerate(expected) if done.get(str(i)) != key]
        if todo or not (folder / "null.pt").is_file():
            log.info("encoding %d of %d clips into %s", len(todo), len(samples), folder)
            codec = LatentCodec(load_vae(layout.vae, torch.float32).eval(), torch.device("cpu"))
            tokenizer = load_tokenizer(layout.tokenizer)
            text_encoder = load_text_encoder(layout.text_encoder, torch.float32).eval()
            null, _ = encode_prompts(tokenizer, text_encoder, list(negative_prompts), layout.family.text_len)
            torch.save({"contexts": null.to(torch.bfloat16)}, folder / "null.pt")
            from tqdm.auto import tqdm

            for i in tqdm(todo, desc="caching latents", disable=len(todo) < 20):
                s = samples[i]
                px = read_clip(s.video, frames, width, height).unsqueeze(0)
                z = codec.encode(px)[0]
                emb, length = encode_prompts(tokenizer, text_encoder, [s.caption], layout.family.text_len)
                torch.save({"latent": z.to(torch.bfloat16), "context": emb[0, : int(length[0])].to(torch.bfloat16)},
                           folder / f"{i:07d}.pt")
                done[str(i)] = expected[i]
                if len(done) % 200 == 0:
                    manifest.write_text(json.dumps(done))
            manifest.write_text(json.dumps(done))
            del codec, text_encoder
        return cls(folder, len(samples), layout.family.text_len)
