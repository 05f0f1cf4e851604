"""A reload after a server restart re-attaches each tab to its job: the key of the job ids the browser
remembers lives in the data folder, not in one server process."""

from __future__ import annotations

import io
import json
import stat
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path
from unittest.mock import patch

from pusa.service.studio.polling import BROWSER_KEY_FILE, browser_secret

# one server start: the studio's page config, and the secret its remembered-job states use
SERVER_START = """
import json, sys, time
from pathlib import Path
from fastapi.testclient import TestClient
from pusa.service.app import create_app
from tests.service.conftest import make_config
app = create_app(make_config(Path(sys.argv[1]), Path(sys.argv[2])), studio=True)
with TestClient(app) as c:
    deadline = time.time() + 120
    while c.get("/api/studio").json()["state"] != "ready":  # the page is built in the background
        assert time.time() < deadline, "the studio did not start"
        time.sleep(0.2)
    config = c.get("/config").json()
secrets = {c["props"]["storage_key"]: c["props"]["secret"] for c in config["components"]
           if c["props"].get("storage_key", "").startswith("pusa-job-")}
print(json.dumps(secrets))
"""


def _start(data_dir: Path, model: Path) -> dict[str, str]:
    """A server start in a process of its own (a restart: nothing of this process carries over)."""
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", SERVER_START, str(data_dir), str(model)], cwd=root,
                         capture_output=True, text=True, timeout=300, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _start_here(data_dir: Path, model: Path) -> dict[str, str]:
    """The same server start in this process."""
    out = io.StringIO()
    with redirect_stdout(out), patch.object(sys, "argv", ["-c", str(data_dir), str(model)]):
        exec(SERVER_START, {"__name__": "__main__"})
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_two_server_starts_on_one_data_folder_read_the_same_remembered_jobs(tiny_model: Path, tmp_path: Path) -> None:
    first, second = _start_here(tmp_path, tiny_model), _start(tmp_path, tiny_model)
    assert set(first) == {"pusa-job-i2v", "pusa-job-keyframes", "pusa-job-v2v", "pusa-job-t2v"}
    assert first == second
    assert set(first.values()) == {(tmp_path / BROWSER_KEY_FILE).read_text().strip()}


def test_the_key_is_private_and_remade_when_cut(tmp_path: Path) -> None:
    key = browser_secret(tmp_path)
    path = tmp_path / BROWSER_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and browser_secret(tmp_path) == key
    path.write_text("abc")  # a crash while it was written
    fresh = browser_secret(tmp_path)
    assert len(fresh) == 32 and fresh != key and browser_secret(tmp_path) == fresh
