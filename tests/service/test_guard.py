"""Who may use the server: Host/Origin checks without a token, token only from env or file, chunked bodies."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pusa.service.app import create_app
from pusa.service.guard import install_log_redaction

from .conftest import make_config

FAST = {"steps": 2, "cfg": 1.0, "width": 64, "height": 64, "frames": 9}
SETTINGS = {"settings": json.dumps({"prompt": "x", **FAST})}


@pytest.fixture(scope="module")
def open_app(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """No token, bound to localhost (the default), with one extra allowed origin."""
    config = make_config(tmp_path_factory.mktemp("data"), tiny_model, allowed_hosts=(),
                         allowed_origins=("http://studio.example:8080",))
    app = create_app(config, studio=False)
    with TestClient(app, base_url="http://127.0.0.1:7860") as c:
        assert app.service.wait_for_model(60)
        app.client = c  # type: ignore[attr-defined]
        yield app


@pytest.fixture
def client(open_app) -> TestClient:  # noqa: ANN001
    return open_app.client


# ---------------------------------------------------------------------------------------------- Host


@pytest.mark.parametrize("host", ["127.0.0.1:7860", "localhost:7860", "[::1]:7860", "localhost"])
def test_this_servers_own_names_are_accepted(client: TestClient, host: str) -> None:
    assert client.get("/api/health", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("method, url", [("get", "/api/health"), ("get", "/api/jobs"), ("get", "/"),
                                         ("post", "/api/jobs")])
def test_dns_rebinding_host_is_refused(client: TestClient, method: str, url: str) -> None:
    kwargs = {"data": SETTINGS} if method == "post" else {}
    before = client.get("/api/jobs").json()["total"]
    r = getattr(client, method)(url, headers={"host": "evil.example:7860"}, **kwargs)
    assert r.status_code == 403, r.text
    assert r.json()["errors"][0]["field"] == "host" and "evil.example" in r.json()["detail"]
    assert client.get("/api/jobs").json()["total"] == before


def test_wildcard_bind_accepts_ip_addresses_but_not_names(tiny_model: Path, tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path / "data", tiny_model, host="0.0.0.0", allowed_hosts=()), studio=False)
    with TestClient(app, base_url="http://192.168.1.20:7860") as c:
        assert c.get("/api/health").status_code == 200
        assert c.get("/api/health", headers={"host": "evil.example"}).status_code == 403
        assert app.service.wait_for_model(60)


def test_the_operator_can_allow_a_host_name(tiny_model: Path, tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path / "data", tiny_model, allowed_hosts=("studio.lan", "box:9000")),
                     studio=False)
    with TestClient(app, base_url="http://studio.lan:7860") as c:
        assert c.get("/api/health").status_code == 200
        assert c.get("/api/health", headers={"host": "box:9000"}).status_code == 200
        assert c.get("/api/health", headers={"host": "box:9001"}).status_code == 403
        assert app.service.wait_for_model(60)


# ---------------------------------------------------------------------------------------------- Origin


def test_cross_origin_changes_are_refused(client: TestClient) -> None:
    before = client.get("/api/jobs").json()["total"]
    r = client.post("/api/jobs", data=SETTINGS, headers={"origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["errors"][0]["field"] == "origin", r.text
    r = client.delete("/api/jobs/0123456789abcdef", headers={"origin": "null"})
    assert r.status_code == 403 and r.json()["errors"][0]["field"] == "origin"
    # another port on this machine is another origin
    r = client.post("/api/jobs", data=SETTINGS, headers={"origin": "http://127.0.0.1:9999"})
    assert r.status_code == 403
    assert client.get("/api/jobs").json()["total"] == before
    # reading is not a change: a cross-origin page cannot read the answer anyway (no CORS headers)
    assert client.get("/api/health", headers={"origin": "http://evil.example"}).status_code == 200


def test_same_origin_and_allowed_origins_may_change(client: TestClient) -> None:
    r = client.post("/api/jobs", data=SETTINGS, headers={"origin": "http://127.0.0.1:7860"})
    assert r.status_code == 201, r.text
    r = client.post("/api/jobs", data=SETTINGS, headers={"origin": "http://studio.example:8080"})
    assert r.status_code == 201, r.text
    assert client.post("/api/jobs", data=SETTINGS).status_code == 201  # no Origin: not a browser page


def test_with_a_token_the_token_decides(tiny_model: Path, tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path / "data", tiny_model, token="s3cret", allowed_hosts=()), studio=False)
    with TestClient(app, base_url="http://pusa.example") as c:
        assert c.get("/api/health").status_code == 401
        assert c.get("/api/health", headers={"authorization": "Bearer s3cret"}).status_code == 200
        assert app.service.wait_for_model(60)


# ---------------------------------------------------------------------------------------------- body size


def test_a_chunked_body_stops_at_the_limit(open_app, client: TestClient) -> None:  # noqa: ANN001
    """Drive the ASGI app directly: a chunked body (no Content-Length) and a count of what it pulled."""
    limit = open_app.config.limits.max_request_bytes()
    chunk = b"x" * 65536
    head = (b"--b\r\nContent-Disposition: form-data; name=\"video\"; filename=\"v.mp4\"\r\n"
            b"Content-Type: video/mp4\r\n\r\n")
    pulled = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        if pulled >= 4 * limit:
            return {"type": "http.request", "body": b"", "more_body": False}
        body = head if pulled == 0 else chunk
        pulled += len(body)
        return {"type": "http.request", "body": body, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/jobs", "raw_path": b"/api/jobs", "query_string": b"",
             "root_path": "", "scheme": "http", "http_version": "1.1", "server": ("127.0.0.1", 7860),
             "client": ("127.0.0.1", 5000), "asgi": {"version": "3.0"},
             "headers": [(b"host", b"127.0.0.1:7860"), (b"content-type", b"multipart/form-data; boundary=b"),
                         (b"transfer-encoding", b"chunked")]}
    client.portal.call(open_app, scope, receive, send)  # type: ignore[union-attr]
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
    assert start["status"] == 413 and body["errors"][0]["field"] == "request", body
    assert pulled <= limit + len(chunk)  # stopped reading at the limit, not at the end of the body
    assert not any((open_app.config.data_dir / "uploads" / ".staging").glob("*"))


# ---------------------------------------------------------------------------------------------- token sources


def serve_args(*argv: str) -> argparse.Namespace:
    from pusa.service.cli import add_serve_options

    parser = argparse.ArgumentParser()
    add_serve_options(parser)
    return parser.parse_args(list(argv))


def test_the_token_is_not_accepted_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        serve_args("--token", "s3cret")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "PUSA_TOKEN" in err and "--token-file" in err and "s3cret" not in err


def test_the_token_comes_from_a_file_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pusa.service.cli import config_from_args

    monkeypatch.delenv("PUSA_TOKEN", raising=False)
    assert config_from_args(serve_args()).token is None
    monkeypatch.setenv("PUSA_TOKEN", "from-env")
    assert config_from_args(serve_args()).token == "from-env"
    f = tmp_path / "token"
    f.write_text("from-file\n")
    f.chmod(0o600)
    assert config_from_args(serve_args("--token-file", str(f))).token == "from-file"
    f.write_text("  \n")
    with pytest.raises(ValueError, match="--token-file: .* is empty"):
        config_from_args(serve_args("--token-file", str(f)))
    with pytest.raises(ValueError, match="--token-file: cannot read"):
        config_from_args(serve_args("--token-file", str(tmp_path / "missing")))
    args = serve_args("--allowed-host", "a.lan", "--allowed-host", "b.lan:81", "--allowed-origin", "http://a.lan")
    config = config_from_args(args)
    assert config.allowed_hosts == ("a.lan", "b.lan:81") and config.allowed_origins == ("http://a.lan",)


def test_the_token_is_redacted_from_the_access_log(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    access = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        # uvicorn's own access-log call
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/?token=s3cret&lang=ko", "1.1", 303)
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/api/health?x=1&token=s3cret", "1.1", 200)
    text = caplog.text
    assert "s3cret" not in text and text.count("token=[redacted]") == 2 and "lang=ko" in text
