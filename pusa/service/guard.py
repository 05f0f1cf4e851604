"""Who may talk to the server, and how much: token, Host/Origin checks, body size, log redaction.

Kept apart from :mod:`pusa.service.app` (which routes requests) because these are the rules a
security review reads: every request passes :class:`RequestGuard` before any route sees it.

- With a token, every route needs it (header, cookie, or ``?token=`` once in a browser).
- Without a token, the server trusts whoever can reach it, so it must make sure that "whoever" is
  not a web page in the user's browser: the Host header must name this server (a DNS-rebinding
  page sends its own name), and a state-changing request that carries an Origin must come from
  this server's own pages (a cross-site form or fetch carries the attacker's origin).
- A request body is counted as it streams in, so a chunked upload (no Content-Length) stops at the
  same limit as a declared one.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from http.cookies import SimpleCookie
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from pusa.service.config import ServiceConfig

log = logging.getLogger(__name__)

COOKIE = "pusa_token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")
STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")


class BodyTooLarge(Exception):
    """The request body passed the limit while it streamed in (HTTP 413 naming "request")."""

    def __init__(self, limit: int):
        super().__init__(f"request body is larger than the upload limits allow ({limit} bytes)")
        self.limit = limit


def headers_of(scope: dict) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def split_host(value: str) -> tuple[str, str | None]:
    """``"[::1]:7860"`` -> ("::1", "7860"); ``"example.org"`` -> ("example.org", None)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        host, rest = value[1:end], value[end + 1:]
        return host, rest[1:] if rest.startswith(":") else None
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, port
    return value, None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class RequestGuard:
    """The checks of the module docstring, configured once from a :class:`ServiceConfig`."""

    def __init__(self, config: ServiceConfig):
        self.config = config
        self.token = config.token
        bound = split_host(config.host)[0] if config.host not in WILDCARD_HOSTS else ""
        self._names = {*LOOPBACK_NAMES, *([bound] if bound else [])}
        self._host_ports: set[str] = set()
        for entry in config.allowed_hosts:
            host, port = split_host(entry)
            if port is None:
                self._names.add(host)
            else:
                self._host_ports.add(f"{host}:{port}")
        self._wildcard = config.host in WILDCARD_HOSTS
        self._origins = {o.rstrip("/").lower() for o in config.allowed_origins}

    # ------------------------------------------------------------------ token

    def check_token(self, scope: dict) -> tuple[bool, bool]:
        """(authorized, came via ?token=) from the Authorization/X-Pusa-Token header, cookie or query."""
        want = (self.token or "").encode()
        headers = headers_of(scope)
        candidates = []
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            candidates.append(auth[7:].strip())
        if "x-pusa-token" in headers:
            candidates.append(headers["x-pusa-token"].strip())
        if "cookie" in headers:
            jar = SimpleCookie()
            try:
                jar.load(headers["cookie"])
            except Exception:  # noqa: BLE001 - a malformed cookie header is just "no token"
                jar = SimpleCookie()
            if COOKIE in jar:
                candidates.append(jar[COOKIE].value)
        for c in candidates:
            if hmac.compare_digest(c.encode(), want):
                return True, False
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if "token" in query and hmac.compare_digest(query["token"].encode(), want):
            return True, True
        return False, False

    # ------------------------------------------------------------------ Host and Origin (no token)

    def host_allowed(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        host, port = split_host(host_header)
        if host in self._names or f"{host}:{port}" in self._host_ports:
            return True
        # bound to every interface: clients use this machine's addresses, which we cannot list; an IP
        # literal cannot come from DNS rebinding (that needs a name the attacker controls)
        return self._wildcard and _is_ip(host)

    def origin_allowed(self, origin: str, host_header: str) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if origin in self._origins:
            return True
        parts = urlsplit(origin)
        # same-origin: the page was served by this server under the Host the request names
        return parts.scheme in ("http", "https") and parts.netloc == host_header.strip().lower()

    def refusal(self, scope: dict) -> tuple[str, str] | None:
        """(header, message) when a token-less request must be refused, else None."""
        if self.token:
            return None
        headers = headers_of(scope)
        host = headers.get("host")
        if not self.host_allowed(host):
            return "host", (f"Host {_short(host)} is not this server's address; open it as http://localhost:"
                            f"{self.config.port}/ or start the server with --allowed-host NAME (or with a token)")
        origin = headers.get("origin")
        changes_state = scope["type"] == "websocket" or scope.get("method") in STATE_CHANGING
        if origin is not None and changes_state and not self.origin_allowed(origin, host or ""):
            return "origin", (f"Origin {_short(origin)} is not this server; a page elsewhere may not use it "
                              f"(start the server with --allowed-origin {_short(origin)} to allow it, or use a token)")
        return None

    # ------------------------------------------------------------------ body size

    def declared_too_large(self, scope: dict) -> bool:
        """A body whose declared size exceeds every file limit combined, refused before reading it."""
        value = headers_of(scope).get("content-length")
        if value is None:
            return False
        try:
            return int(value) > self.config.limits.max_request_bytes()
        except ValueError:
            return False

    def limited_receive(self, receive: Callable) -> Callable:
        """``receive`` that raises :class:`BodyTooLarge` before handing on the chunk that passes the limit."""
        limit = self.config.limits.max_request_bytes()
        seen = 0

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        return counted


def _short(value: str | None, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 4] + "...'"


# ---------------------------------------------------------------------------------------------- logs

_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    """``/?token=abc&x=1`` -> ``/?token=[redacted]&x=1``."""
    return _TOKEN_IN_QUERY.sub(r"\1[redacted]", text)


class RedactTokenFilter(logging.Filter):
    """Removes ``?token=`` values from log records (uvicorn's access log prints the full query)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install_log_redaction(logger_name: str = "uvicorn.access") -> None:
    """Attach :class:`RedactTokenFilter` to the access logger once (idempotent)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactTokenFilter) for f in logger.filters):
        logger.addFilter(RedactTokenFilter())
