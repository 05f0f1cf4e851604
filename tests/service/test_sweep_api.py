"""``/api/sweeps`` on the real engine (tiny model): a sweep is a group of jobs with a group id."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pusa.service.app import create_app
from pusa.service.engine import pipeline_loader

from .conftest import make_config, slow_loader, wait_job, write_png

FAST = {"steps": 1, "cfg": 1.0, "width": 64, "height": 64, "frames": 5}


def post_sweep(client: TestClient, settings: dict, sweep: dict | str | None, images: list[Path] = ()):
    files = [("images", (p.name, p.read_bytes(), "image/png")) for p in images]
    data = {"settings": json.dumps(settings)}
    if sweep is not None:
        data["sweep"] = sweep if isinstance(sweep, str) else json.dumps(sweep)
    return client.post("/api/sweeps", data=data, files=files or None)


@pytest.fixture(scope="module")
def client(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    app = create_app(make_config(tmp_path_factory.mktemp("data"), tiny_model), studio=False)
    with TestClient(app) as c:
        assert app.service.wait_for_model(60) and app.service.model_ready
        c.app_obj = app  # type: ignore[attr-defined]
        yield c


def test_a_sweep_queues_one_job_per_cell_sharing_a_group(client: TestClient, tmp_path: Path) -> None:
    png = write_png(tmp_path / "a.png")
    r = post_sweep(client, {"task": "i2v", "prompt": "a boat", **FAST},
                   {"lora_alpha": [1.0, 2.0], "noise_multipliers": [0.1, 0.5]}, [png])
    assert r.status_code == 201, r.text
    body = r.json()
    group = body["group"]
    assert r.headers["location"] == f"/api/sweeps/{group}"
    assert (body["rows"], body["cols"], len(body["cells"])) == (2, 2, 4)
    ids = [c["job_id"] for c in body["cells"]]
    for job_id in ids:
        assert wait_job(client, job_id)["status"] == "succeeded"
    sweep = client.get(f"/api/sweeps/{group}").json()
    assert sweep["finished"] and sweep["counts"] == {"succeeded": 4}
    cell = sweep["cells"][1]  # row 1, column 2: the first alpha, the second multiplier
    assert (cell["row"], cell["col"], cell["label"]) == (0, 1, "alpha 1.0 · mult 0.5")
    assert cell["settings"]["lora_alpha"] == 1.0 and cell["settings"]["noise_multipliers"] == [0.5]
    jobs = [client.get(f"/api/jobs/{i}").json() for i in ids]
    assert {j["group"] for j in jobs} == {group}
    assert len({j["seed"] for j in jobs}) == 1  # cells differ only by the axes
    assert [j["resolved_settings"]["lora_alpha"] for j in jobs] == [1.0, 1.0, 2.0, 2.0]
    assert client.get(cell["job"]["video_url"]).status_code == 200
    # each cell owns its inputs: deleting one cell leaves the others' and shows it as deleted
    assert client.delete(f"/api/jobs/{ids[0]}").json()["action"] == "deleted"
    data_dir = client.app_obj.config.data_dir  # type: ignore[attr-defined]
    assert all(any((data_dir / "uploads" / i).iterdir()) for i in ids[1:])
    assert client.get(f"/api/sweeps/{group}").json()["cells"][0]["status"] == "deleted"
    listed = {j["id"]: j["group"] for j in client.get("/api/jobs", params={"limit": 200}).json()["items"]}
    assert all(listed[i] == group for i in ids[1:])


@pytest.mark.parametrize("settings, sweep, field, words", [
    ({"task": "t2v"}, {"lora_alpha": [1.0, 9.0]}, "sweep.lora_alpha", "9.0"),
    ({"task": "t2v"}, {"cfg": [1, 2]}, "sweep", "cannot be swept"),
    ({"task": "t2v"}, {"noise_multipliers": [0.1, 0.2]}, "sweep.noise_multipliers", "no conditions"),
    ({"task": "t2v"}, {"steps": [1, 2, 3, 4]}, "sweep.steps", "give 2 or 3"),
    ({"task": "t2v"}, "[1, 2]", "sweep", "JSON object"),
    ({"task": "t2v"}, None, "sweep", "missing"),
    ({"task": "t2v", "steps": 99}, {"seed": [1, 2]}, "steps", "50"),
])
def test_bad_axes_answer_422_naming_the_field_and_queue_nothing(client: TestClient, settings, sweep, field,
                                                                words) -> None:
    before = client.get("/api/jobs").json()["total"]
    r = post_sweep(client, {"prompt": "x", **FAST, **settings}, sweep)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field and words in r.json()["detail"]
    assert client.get("/api/jobs").json()["total"] == before


def test_the_axes_may_also_come_inside_the_settings(client: TestClient) -> None:
    r = post_sweep(client, {"task": "t2v", "prompt": "x", **FAST, "sweep": {"seed": [1, 2]}}, None)
    assert r.status_code == 201, r.text
    assert [c["settings"]["seed"] for c in r.json()["cells"]] == [1, 2]
    for c in r.json()["cells"]:
        wait_job(client, c["job_id"])


def test_unknown_group_is_404(client: TestClient) -> None:
    for r in (client.get("/api/sweeps/0123abcd"), client.post("/api/sweeps/0123abcd/cancel"),
              client.get("/api/sweeps/..%2Fetc")):
        assert r.status_code == 404


def test_the_queue_cap_counts_every_cell(tiny_model: Path, tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", tiny_model, max_queued=3)
    gate = threading.Event()
    real = pipeline_loader(config)

    def gated(on_progress):  # noqa: ANN001, ANN202 - jobs wait in the queue until the test lets the model load
        assert gate.wait(60)
        return real(on_progress)

    with TestClient(create_app(config, loader=gated, studio=False)) as c:
        r = post_sweep(c, {"task": "t2v", "prompt": "x", **FAST}, {"steps": [1, 2], "seed": [1, 2]})
        assert r.status_code == 429, r.text
        assert r.json()["errors"][0]["field"] == "queue"
        assert c.get("/api/jobs").json()["total"] == 0  # all or nothing
        r = post_sweep(c, {"task": "t2v", "prompt": "x", **FAST}, {"steps": [1, 2, 3]})
        assert r.status_code == 201, r.text
        assert post_sweep(c, {"task": "t2v", "prompt": "x", **FAST}, {"steps": [1, 2]}).status_code == 429
        gate.set()
        for cell in r.json()["cells"]:
            wait_job(c, cell["job_id"])


def test_cancel_a_sweep_and_it_survives_a_restart(tiny_model: Path, tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", tiny_model)
    with TestClient(create_app(config, loader=slow_loader(config, 0.5), studio=False)) as c:
        assert c.app.service.wait_for_model(60)  # type: ignore[attr-defined]
        r = post_sweep(c, {"task": "t2v", "prompt": "x", **FAST, "steps": 4}, {"seed": [1, 2, 3]})
        assert r.status_code == 201, r.text
        group = r.json()["group"]
        ids = [cell["job_id"] for cell in r.json()["cells"]]
        wait_job(c, ids[0], until=("running",))
        actions = c.post(f"/api/sweeps/{group}/cancel").json()["actions"]
        assert actions[ids[0]] == "cancelling" and actions[ids[1]] == actions[ids[2]] == "cancelled"
        assert {wait_job(c, i)["status"] for i in ids} == {"cancelled"}
    with TestClient(create_app(config, studio=False)) as c:
        sweep = c.get(f"/api/sweeps/{group}").json()
        assert [cell["job_id"] for cell in sweep["cells"]] == ids and sweep["finished"]
        assert [cell["label"] for cell in sweep["cells"]] == ["seed 1", "seed 2", "seed 3"]
        assert c.get(f"/api/jobs/{ids[2]}").json()["group"] == group
        assert set(c.delete(f"/api/sweeps/{group}").json()["actions"].values()) == {"deleted"}
        assert c.get(f"/api/sweeps/{group}").json()["counts"] == {"deleted": 3}
        assert c.app.service.wait_for_model(60)  # type: ignore[attr-defined]
