"""History's table holds text only. Gradio types a column by its cells: a seed column of numbers with
the empty cell of a queued job became a number column, and the empty cell showed as NaN."""

from __future__ import annotations

from pathlib import Path

from pusa.service.app import create_app
from pusa.service.studio.history import job_rows

from .conftest import make_config


def test_unknown_cells_are_empty_text(tiny_model: Path, tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path, tiny_model), studio=False)  # not started: the job stays queued
    service = app.service
    queued = service.submit({"prompt": "a ball", "steps": 1, "frames": 5})
    seeded = service.submit({"prompt": "a box", "steps": 1, "frames": 5})
    service.store.set_resolved(seeded.id, {"seed": 1234})  # what the worker records when it starts a job
    rows = job_rows(service, [service.get(queued.id), service.get(seeded.id)], "ko")
    assert all(isinstance(cell, str) for row in rows for cell in row), rows
    (q, s) = rows
    assert (q[0], q[3], q[4], q[5]) == (queued.id, "a ball", "", "") and (s[3], s[4]) == ("a box", "1234")
