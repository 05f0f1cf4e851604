"""Every settings field, sent with the wrong JSON types through the API: always 422 naming that field.

The fields come from the settings model itself, so a field added later is fuzzed too. Each value
below is wrong for its kind by type (not by a cross-field rule), so the answer must name the field
that was sent, never another one, never a plain-text 500.
"""

from __future__ import annotations

import json
import math
import typing
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pusa.service.app import create_app
from pusa.settings import GenerationSettings

from .conftest import make_config, write_png

FAST = {"steps": 2, "cfg": 1.0, "width": 64, "height": 64, "frames": 9}
NAN, INF = float("nan"), float("inf")

_COMMON = [{}, {"a": 1}, [[1]], NAN]
BAD: dict[str, list[Any]] = {
    "int": [True, False, "abc", "10", 1.5, 64.9, 10**30, -10**30, INF, [], [1], *_COMMON],
    "float": [True, False, "abc", "1.0", 1e308, -1e308, INF, -INF, [], [1.0], *_COMMON],
    "str": [True, 1, 1.5, 10**30, [], [1], *_COMMON],
    "literal": [True, 1, "no-such-choice", [], *_COMMON],
    "bool": [1, 0, "true", "yes", 1.0, [], *_COMMON],
    "list": [True, False, {}, {"a": 1}, [None], [True], [{}], [[1]], NAN],
}
# sizes: a string form, a preset or a [w, h] pair of whole numbers; everything else is refused
BAD_SIZE = [True, 1, 64.9, [None, None], [[1], [2]], [64.9, 64.9], [64, 64, 64], [True, True], ["64", "64"],
            {}, {"w": 64}, "abc", "64x", NAN, [NAN, NAN]]


def kind_of(annotation: Any) -> tuple[str, bool]:
    """(kind, None allowed) from a field's annotation."""
    args = typing.get_args(annotation)
    nullable = type(None) in args
    inner = [a for a in args if a is not type(None)] if nullable else [annotation]
    base = inner[0]
    while typing.get_origin(base) is typing.Annotated:
        base = typing.get_args(base)[0]
    if typing.get_origin(base) is typing.Literal:
        return "literal", nullable
    if typing.get_origin(base) is list:
        return "list", nullable
    return {int: "int", float: "float", str: "str", bool: "bool"}[base], nullable


def cases() -> list[tuple[str, Any]]:
    out = []
    for name, info in GenerationSettings.model_fields.items():
        kind, nullable = kind_of(info.annotation)
        values = list(BAD[kind])
        if not nullable:
            values.append(None)
        if name == "prompt":
            values.append("")
        out += [(name, v) for v in values]
    return out + [("size", v) for v in BAD_SIZE]


@pytest.fixture(scope="module")
def client(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    app = create_app(make_config(tmp_path_factory.mktemp("data"), tiny_model), studio=False)
    with TestClient(app) as c:
        assert app.service.wait_for_model(60) and app.service.model_ready
        c.png = write_png(tmp_path_factory.mktemp("in") / "a.png").read_bytes()  # type: ignore[attr-defined]
        yield c


def test_kinds_cover_every_field() -> None:
    for name, info in GenerationSettings.model_fields.items():
        assert kind_of(info.annotation)[0] in BAD, name


@pytest.mark.parametrize("field, value", cases(), ids=lambda x: repr(x)[:24])
def test_a_wrongly_typed_field_is_422_naming_it(client: TestClient, field: str, value: Any) -> None:
    settings: dict[str, Any] = {"task": "i2v", "prompt": "x", **FAST}
    if field == "size":
        settings.pop("width")
        settings.pop("height")
    settings[field] = value
    body = json.dumps(settings, allow_nan=True)  # NaN/Infinity as Python's json (and many clients) write them
    r = client.post("/api/jobs", data={"settings": body},
                    files=[("images", ("a.png", client.png, "image/png"))])  # type: ignore[attr-defined]
    assert r.status_code == 422, (field, value, r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    fields = [e["field"] for e in r.json()["errors"]]
    assert field in fields, (field, value, r.json())
    assert len(r.text) < 3000


def test_size_and_width_together_are_refused(client: TestClient) -> None:
    r = client.post("/api/jobs", data={"settings": json.dumps({"prompt": "x", "size": "64x64", "width": 64})})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "size"


def test_non_finite_numbers_never_reach_a_job(client: TestClient) -> None:
    before = client.get("/api/jobs").json()["total"]
    for value in (NAN, INF):
        assert math.isnan(value) or math.isinf(value)
        r = client.post("/api/jobs", data={"settings": json.dumps({"prompt": "x", "cfg": value, **{
            k: v for k, v in FAST.items() if k != "cfg"}})})
        assert r.status_code == 422
    assert client.get("/api/jobs").json()["total"] == before
