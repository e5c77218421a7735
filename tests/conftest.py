"""Shared fixtures. Tests run against the repo's own packages and ../shared/data."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_AUTH_MODE", "token")   # read by Ray when first imported (flows/cluster.py)


@pytest.fixture(scope="session")
def prefect_api():
    """One temporary Prefect server (with its own database) for the fast tests that need an API."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def pytest_sessionfinish(session, exitstatus):
    """Stop a vLLM engine a test left running while pytest's output streams are still open.

    Left to interpreter exit, its shutdown logs to streams pytest has already closed and prints
    "--- Logging error ---" tracebacks after a green run.
    """
    if "tasks.engine" in sys.modules:
        sys.modules["tasks.engine"].shutdown()
