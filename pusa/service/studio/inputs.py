"""Which files a studio request may name as job inputs, and the upload widgets that enforce it.

Why this exists: Gradio's page sends an uploaded file as ``{"path": ..., "meta": {"_type":
"gradio.FileData"}}``, and any client can put any server path there. Mounted with
``gr.mount_gradio_app`` (``Blocks.has_launched`` stays False), Gradio's own "was it uploaded?" check
never runs and it copies the named file into its cache before our handler is called; that path then
looks like an upload, and a job would copy the file out. So the guard sits where the copy happens:
the studio's image and video inputs refuse, before copying, any path outside Gradio's upload cache
for this studio or the studio's examples (symlinks resolved). The generate handler checks again
(:meth:`InputFiles.accept`), which is what turns a refusal into a message next to the field.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Self

import gradio as gr

from pusa.service.uploads import UploadRejected

NOT_RECEIVED = "this file was not uploaded through this page; upload it again"


class InputFiles:
    """The folders a job input may come from: Gradio's upload cache (``cache_dir``) and the examples."""

    def __init__(self, cache_dir: Path, examples_dir: Path):
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir = cache_dir
        self.examples_dir = examples_dir
        self._roots = (Path(os.path.realpath(cache_dir)), Path(os.path.realpath(examples_dir)))

    def accepts(self, path: Any) -> bool:
        """True for an existing regular file inside one of the roots once symlinks are resolved."""
        if not isinstance(path, (str, Path)) or not str(path) or "://" in str(path):
            return False
        real = Path(os.path.realpath(path))
        return any(real.is_relative_to(root) for root in self._roots) and real.is_file()

    def accept(self, path: Any, field: str) -> Path:
        """The file's resolved path, or UploadRejected naming ``field`` (never the path: it is the server's)."""
        if not self.accepts(path):
            raise UploadRejected(field, NOT_RECEIVED, 422)
        return Path(os.path.realpath(path))

    def adopt(self, path: Path) -> str | None:
        """A copy of one of our own files (a past job's input) in the cache, so the page may send it back.

        None when the file is gone (its job was deleted meanwhile): the form slot is then left empty.
        """
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
        dest = self.cache_dir / "reuse" / digest / path.name
        if dest.is_file():
            return str(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            return None
        os.replace(tmp, dest)
        return str(dest)


class _Guarded:
    """Mixin for a Gradio upload component: names outside :class:`InputFiles` never reach Gradio's cache.

    The subclasses keep Gradio's own constructor (its signature is the component's config), so the
    folders are attached after construction with :meth:`guard`; an unguarded instance refuses all.
    """

    files: InputFiles | None = None
    field = "file"

    def guard(self, files: InputFiles, field: str) -> Self:
        self.files = files
        self.field = field
        self.GRADIO_CACHE = str(files.cache_dir)  # per component, instead of the process-wide GRADIO_TEMP_DIR
        return self

    def _check(self, url_or_file_path: Any) -> None:
        if url_or_file_path is not None and (self.files is None or not self.files.accepts(url_or_file_path)):
            raise gr.Error(f"{self.field}: {NOT_RECEIVED}", title=self.field)

    def move_resource_to_block_cache(self, url_or_file_path: Any) -> str | None:
        self._check(url_or_file_path)
        return super().move_resource_to_block_cache(url_or_file_path)  # type: ignore[misc]

    async def async_move_resource_to_block_cache(self, url_or_file_path: Any) -> str | None:
        self._check(url_or_file_path)
        return await super().async_move_resource_to_block_cache(url_or_file_path)  # type: ignore[misc]


class StudioImage(_Guarded, gr.Image):
    """``gr.Image`` that takes only files this studio received; see the module docstring."""

    def get_block_name(self) -> str:  # drawn by Gradio's own image widget
        return "image"

    def get_block_class(self) -> str:
        return "image"


class StudioVideo(_Guarded, gr.Video):
    """``gr.Video`` that takes only files this studio received; see the module docstring."""

    def get_block_name(self) -> str:  # drawn by Gradio's own video widget
        return "video"

    def get_block_class(self) -> str:
        return "video"
