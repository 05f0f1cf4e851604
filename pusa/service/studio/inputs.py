"""Which files a studio request may name as job inputs, and the guard in front of Gradio that enforces it.

Why this exists: Gradio's page sends an uploaded file as ``{"path": ..., "meta": {"_type":
"gradio.FileData"}}``, and any client can put any server path there. Mounted with
``gr.mount_gradio_app`` (``Blocks.has_launched`` stays False), Gradio's own "was it uploaded?" check
never runs: it copies the named file into its cache before any handler runs, and a job would copy
it out. A check on the component does not hold either: Gradio re-creates a component for every
session that receives a property update (or an output a handler's dict leaves out), without it.

So :class:`FileGuard` reads every request body to the studio (uploads aside) before Gradio does,
and refuses (422, naming the field, never the path) any file object whose path, symlinks resolved,
lies outside Gradio's upload cache for this studio or the studio's examples. Everything the page
legitimately sends lives there: uploads, example rows and every value the server showed it
(Gradio copies those into the cache). The generate handler checks again (:meth:`InputFiles.accept`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from pusa.atomic import atomic_file
from pusa.service.config import UploadLimits
from pusa.service.uploads import UploadRejected

NOT_RECEIVED = "this file was not uploaded through this page; upload it again"
MAX_JSON_BYTES = 8 * 1024 * 1024  # a studio request is settings and file references, never file contents


class InputFiles:
    """The folders a job input may come from: Gradio's upload cache (``cache_dir``) and the examples."""

    def __init__(self, cache_dir: Path, examples_dir: Path, limits: UploadLimits | None = None):
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.limits = limits or UploadLimits()  # what an upload may be (the page checks on arrival)
        self.cache_dir = cache_dir
        self.examples_dir = examples_dir
        self._roots = (Path(os.path.realpath(cache_dir)), Path(os.path.realpath(examples_dir)))
        self.fields: dict[int, str] = {}  # Gradio component id -> the settings field its file is for

    def register(self, component: Any, field: str) -> Any:
        """Remember which settings field a file input stands for (the guard names it when refusing)."""
        self.fields[component._id] = field
        return component

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


    def last_frame(self, video: str | Path) -> str | None:
        """The last frame of one of our videos as a PNG in the cache (None when it cannot be read)."""
        import av

        digest = hashlib.sha256(str(video).encode()).hexdigest()[:16]
        dest = self.cache_dir / "reuse" / digest / "last-frame.png"
        if dest.is_file():
            return str(dest)
        try:
            with av.open(str(video)) as container:
                frame = None
                for frame in container.decode(video=0):
                    pass
            if frame is None:
                return None
            dest.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(dest) as tmp:
                frame.to_image().save(tmp, format="PNG")
        except Exception:  # noqa: BLE001 - an unreadable video: the caller says so in a sentence
            return None
        return str(dest)


def _file_paths(value: Any) -> Iterator[Any]:
    """Every ``path`` of a file object (a dict with a ``path``) anywhere inside ``value``."""
    if isinstance(value, dict):
        if "path" in value and value["path"] is not None:
            yield value["path"]
        for v in value.values():
            yield from _file_paths(v)
    elif isinstance(value, list):
        for v in value:
            yield from _file_paths(v)


class FileGuard:
    """ASGI middleware for the studio app: see the module docstring.

    ``inputs_of`` maps an event id (Gradio's ``fn_index``) to the component ids of its inputs, as the
    page's own config lists them, so a refusal names the field of the offending value.
    """

    def __init__(self, app: Any, files: InputFiles, inputs_of: Callable[[], dict[int, list[int]]]):
        self.app = app
        self.files = files
        self.inputs_of = inputs_of

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH") or _is_upload(scope):
            await self.app(scope, receive, send)
            return
        body, complete = await _read_body(receive, MAX_JSON_BYTES)
        if not complete:
            await _send_json(send, 413, {"detail": f"request body is larger than {MAX_JSON_BYTES} bytes",
                                         "errors": [{"field": "request", "message": "too large"}]})
            return
        field = self.refused_field(body)
        if field is not None:
            await _send_json(send, 422, {"detail": f"{field}: {NOT_RECEIVED}",
                                         "errors": [{"field": field, "message": NOT_RECEIVED}]})
            return
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def refused_field(self, body: bytes) -> str | None:
        """The field of the first file the request may not name, or None when every file is acceptable."""
        try:
            payload = json.loads(body)
        except ValueError:
            return None  # not JSON after all: Gradio answers it (and copies nothing)
        if not isinstance(payload, dict):
            return None if not any(True for _ in _file_paths(payload)) else "file"
        data = payload.get("data")
        inputs = self.inputs_of().get(payload.get("fn_index"), []) if isinstance(data, list) else []
        for i, value in enumerate(data if isinstance(data, list) else []):
            if any(not self.files.accepts(p) for p in _file_paths(value)):
                return self.files.fields.get(inputs[i], "file") if i < len(inputs) else "file"
        rest = {k: v for k, v in payload.items() if k != "data"}
        return "file" if any(not self.files.accepts(p) for p in _file_paths(rest)) else None


def _is_upload(scope: dict) -> bool:
    """Multipart bodies are uploads (file contents, streamed to Gradio's cache): only other bodies can name
    paths. FastAPI reads a body without a content type as JSON, so those are checked too."""
    for k, v in scope.get("headers", []):
        if k.lower() == b"content-type":
            return v.lower().startswith(b"multipart/")
    return False


async def _read_body(receive: Callable, limit: int) -> tuple[bytes, bool]:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


async def _send_json(send: Callable, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
