"""The one ASGI app of ``pusa serve``: API under ``/api``, Gradio studio at ``/``, token guard around both.

Why a hand-written root instead of ``mount_gradio_app`` on the API app: importing Gradio and
building the page takes several seconds and loading a model minutes. The root answers at once:
``/api/*`` is live from the first request, and ``/`` shows a small loading page (per-component
model progress) until the studio is built, then hands every non-API request to Gradio.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import threading
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI

from pusa.service.api import build_router, install_error_handlers
from pusa.service.config import ServiceConfig
from pusa.service.engine import Engine, ModelHost, ProgressFn, pipeline_loader
from pusa.service.guard import COOKIE, STATE_CHANGING, BodyTooLarge, RequestGuard, install_log_redaction
from pusa.service.jobs import JobService

log = logging.getLogger(__name__)


class PusaApp:
    """Root ASGI application; see the module docstring."""

    def __init__(self, config: ServiceConfig, loader: Callable[[ProgressFn], Engine] | None = None,
                 studio: bool | None = None,
                 loader_factory: Callable[[ServiceConfig], Callable[[ProgressFn], Engine]] | None = None):
        self.config = config
        factory = loader_factory or pipeline_loader  # a model switch (--models-dir) builds its loader the same way
        # the service is the one facade: the app, the API and the studio reach the model only through it
        self.service = JobService(config, ModelHost(loader or factory(config), config.model_label), factory)
        self.guard = RequestGuard(config)
        self.want_studio = config.studio if studio is None else studio
        self.studio_state = "building" if self.want_studio else "disabled"
        self.studio_error: str | None = None
        self._studio_app: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None
        self._studio_task: Any = None
        self.api = FastAPI(title="Pusa studio API", version="1",
                           description="Queue video generation jobs (t2v, i2v, keyframes, v2v) on a Pusa model.",
                           docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None)
        install_error_handlers(self.api)
        router = build_router(self.service)

        @router.get("/studio", summary="State of the web studio (building, ready, failed, disabled)")
        def studio_state() -> dict[str, Any]:
            return {"state": self.studio_state, "error": self.studio_error}

        self.api.include_router(router, prefix="/api")

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path = scope.get("path", "")
        is_api = path == "/api" or path.startswith("/api/")
        if self.config.token:
            ok, via_query = self.guard.check_token(scope)
            if not ok:
                await self._unauthorized(scope, send, is_api)
                return
            if via_query and not is_api and scope["type"] == "http" and scope.get("method") == "GET":
                await self._set_cookie_redirect(scope, send)
                return
        refused = self.guard.refusal(scope)
        if refused is not None:
            await self._forbidden(scope, send, *refused)
            return
        if is_api:
            if scope["type"] == "http" and scope.get("method") in STATE_CHANGING:
                limit = self.config.limits.max_request_bytes()
                if self.guard.declared_too_large(scope):
                    await self._send_json(send, 413, {"detail": str(BodyTooLarge(limit)),
                                                      "errors": [{"field": "request", "message": "too large"}]})
                    return
                receive = self.guard.limited_receive(receive)  # a chunked body has no Content-Length
            await self.api(scope, receive, send)
        elif self._studio_app is not None:
            await self._studio_app(scope, receive, send)
        elif scope["type"] == "http":
            await self._loading_page(send)
        # a websocket before the studio exists: nothing to talk to; returning closes it

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        started = False
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.startup()
                except Exception as e:  # e.g. data dir busy: uvicorn reports this and exits
                    log.error("startup failed: %s", e)
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    raise  # as Starlette's own router does: servers and test clients expect it
                started = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if started:
                    await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def startup(self) -> None:
        """Start the worker and the model load; build the studio in the background."""
        install_log_redaction()
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self.service.start()
        self._loop = asyncio.get_running_loop()
        self._shutdown = asyncio.Event()
        if self.want_studio:
            threading.Thread(target=self._build_studio, name="pusa-studio-build", daemon=True).start()

    async def shutdown(self) -> None:
        if self._shutdown is not None:
            self._shutdown.set()
        if self._studio_task is not None:
            try:
                await asyncio.wait_for(asyncio.wrap_future(self._studio_task), 10)
            except Exception:  # shutting down: a studio that will not stop cleanly is not worth hanging for
                log.warning("studio did not shut down cleanly", exc_info=True)
        await asyncio.to_thread(self.service.stop)

    # ------------------------------------------------------------------ studio

    def _build_studio(self) -> None:
        try:
            # the cache dir goes to Gradio directly: no process-wide environment change
            from pusa.service.studio import mount_studio, studio_cache_dir

            cache = studio_cache_dir(self.config)
            cache.mkdir(parents=True, exist_ok=True)
            app = mount_studio(self.service, self.config, cache_dir=cache)
            assert self._loop is not None
            self._studio_task = asyncio.run_coroutine_threadsafe(self._run_studio(app), self._loop)
        except Exception as e:  # the API keeps working without the page; say why on the page
            log.exception("studio failed to build")
            self.studio_error = f"{type(e).__name__}: {e}"
            self.studio_state = "failed"

    async def _run_studio(self, app: Any) -> None:
        """Run Gradio's startup/shutdown (its queue) inside our own lifespan."""
        assert self._shutdown is not None
        async with app.router.lifespan_context(app):
            self._studio_app = app
            self.studio_state = "ready"
            log.info("studio ready")
            await self._shutdown.wait()
        self._studio_app = None

    # ------------------------------------------------------------------ token guard

    async def _send_json(self, send: Callable, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    async def _set_cookie_redirect(self, scope: dict, send: Callable) -> None:
        """Turn ``/?token=...`` into a cookie, then drop the token from the address bar."""
        query = [(k, v) for k, v in parse_qsl(scope.get("query_string", b"").decode("latin-1")) if k != "token"]
        location = (scope.get("root_path", "") + scope["path"]) + (f"?{urlencode(query)}" if query else "")
        cookie = f"{COOKIE}={self.config.token}; Path=/; HttpOnly; SameSite=Strict"
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode()),
                                (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    async def _forbidden(self, scope: dict, send: Callable, header: str, message: str) -> None:
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        log.warning("refused a request: %s", message)
        await self._send_json(send, 403, {"detail": message, "errors": [{"field": header, "message": message}]})

    async def _unauthorized(self, scope: dict, send: Callable, is_api: bool) -> None:
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        if is_api:
            body = (b'{"detail": "missing or wrong token: send the header Authorization: Bearer <token>",'
                    b' "errors": []}')
            ctype = b"application/json"
        else:
            body = _TOKEN_PAGE.encode()
            ctype = b"text/html; charset=utf-8"
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})

    async def _loading_page(self, send: Callable) -> None:
        body = _LOADING_PAGE.replace("{label}", html.escape(self.service.model_snapshot()["label"])).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": body})


def create_app(config: ServiceConfig, *, loader: Callable[[ProgressFn], Engine] | None = None,
               studio: bool | None = None,
               loader_factory: Callable[[ServiceConfig], Callable[[ProgressFn], Engine]] | None = None) -> PusaApp:
    """Build the service app; ``loader`` replaces the real model loader (tests use the tiny model), and
    ``loader_factory`` (a config -> loader function) the loaders of later model switches too."""
    return PusaApp(config, loader=loader, studio=studio, loader_factory=loader_factory)


_TOKEN_PAGE = """<!doctype html><html lang="en"><meta charset="utf-8"><title>Pusa studio: token required</title>
<body style="font-family:sans-serif;max-width:32rem;margin:4rem auto">
<h1>Pusa studio</h1><p>This server needs an access token. / 이 서버는 접근 토큰이 필요합니다.</p>
<form method="get" action="/"><label>Token / 토큰 <input name="token" type="password" autofocus></label>
<button type="submit">Open / 열기</button></form></body></html>"""

_LOADING_PAGE = """<!doctype html><html lang="en"><meta charset="utf-8"><title>Pusa studio: starting</title>
<body style="font-family:sans-serif;max-width:40rem;margin:3rem auto">
<h1>Pusa studio</h1>
<p>Starting up: the page opens by itself in a moment. / 시작하는 중입니다. 잠시 후 페이지가 열립니다.</p>
<p>Model / 모델: <b>{label}</b></p>
<div id="state">…</div>
<script>
async function poll() {
  try {
    const h = await (await fetch('/api/health')).json();
    const s = await (await fetch('/api/studio')).json();
    const comps = Object.entries(h.model.components || {}).map(([k, v]) => `<li>${k}: ${v}</li>`).join('');
    document.getElementById('state').innerHTML =
      `<p>Model: ${h.model.state}${h.model.error ? ' — ' + h.model.error : ''}</p><ul>${comps}</ul>` +
      `<p>Studio: ${s.state}${s.error ? ' — ' + s.error : ''}</p>`;
    if (s.state === 'ready') { location.reload(); return; }
  } catch (e) { }
  setTimeout(poll, 700);
}
poll();
</script></body></html>"""
