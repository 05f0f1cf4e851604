"""Start the setup-script test's slow commands in the background once it is known to be selected."""

from __future__ import annotations

import pytest


@pytest.hookimpl(trylast=True)  # after -k / -m deselection: never start it for a test that will not run
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    from tests.setup import test_setup_script as t

    if any(item.nodeid.endswith("test_setup_on_the_system_python_makes_a_venv_and_pusa_runs") for item in items) \
            and t.externally_managed():
        config.stash[t.SETUP_RUN] = t.SetupRun().start()


def pytest_unconfigure(config: pytest.Config) -> None:
    from tests.setup import test_setup_script as t

    run = config.stash.get(t.SETUP_RUN, None)
    if run is not None and not run.thread.is_alive():  # a session stopped before the test ran
        run.remove()
