"""Which files a studio request may name as job inputs, and the upload widgets that enforce it.

Why this exists: Gradio's page sends an uploaded file as ``{"path": ..., "meta": {"_type":
"gradio.FileData"}}``, and any client can put any server path there. Mounted with
``gr.mount_gradio_app`` (``Blocks.has_launched`` stays False), Gradio's own "was it uploaded?" check
never runs and it copies the named file into its cache before our handler is called; that path then
looks like an upload, and a job would copy the file out. So the guard sits where the copy happens:
the studio's image and video inputs (:func:`guarded`) refuse, before copying, any path outside Gradio's upload cache
for this studio or the studio's examples (symlinks resolved). The generate handler checks again
(:meth:`InputFiles.accept`), which is what turns a refusal into a message next to the field.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from pusa.service.uploads import UploadRejected

NOT_RECEIVED = "this file was not uploaded through this page; upload it again"
C = TypeVar("C", gr.Image, gr.Video)


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


def guarded(component: C, files: InputFiles, field: str) -> C:
    """``component`` (a ``gr.Image`` or ``gr.Video`` input), refusing names outside ``files`` before Gradio copies.

    The check is attached to the instance rather than to a subclass: Gradio writes a ``.pyi`` stub
    next to the source of every component subclass at import time, which a package must not do.
    Gradio re-creates a component only for a session that received a property update (``gr.update``)
    for it; the studio sends these inputs values only, so the guarded instance is the one that runs.
    """
    move, move_async = component.move_resource_to_block_cache, component.async_move_resource_to_block_cache

    def check(url_or_file_path: Any) -> None:
        if url_or_file_path is not None and not files.accepts(url_or_file_path):
            raise gr.Error(f"{field}: {NOT_RECEIVED}", title=field)

    def move_checked(url_or_file_path: Any) -> str | None:
        check(url_or_file_path)
        return move(url_or_file_path)

    async def move_async_checked(url_or_file_path: Any) -> str | None:
        check(url_or_file_path)
        return await move_async(url_or_file_path)

    component.move_resource_to_block_cache = move_checked  # type: ignore[method-assign]
    component.async_move_resource_to_block_cache = move_async_checked  # type: ignore[method-assign]
    component.GRADIO_CACHE = str(files.cache_dir)  # per component, instead of the process-wide GRADIO_TEMP_DIR
    return component
