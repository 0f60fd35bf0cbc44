"""What every test run gets: no process may outlive it.

Helpers the tests share live in tests/support/ (`from tests.support import require`)."""
import os
import uuid

import pytest

from tests.support import processes

# Every process the run starts inherits this, even one that leaves the run's process tree
# (Catalyst runs in a session of its own), so the check below finds it without touching
# processes of other runs on the same machine.
RUN_MARKER = "GENTOO_ZFS_LIVECD_TEST_RUN"


def pytest_configure(config):
    os.environ[RUN_MARKER] = uuid.uuid4().hex


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_run():
    yield
    strays = processes.started_by(os.getpid(), f"{RUN_MARKER}={os.environ[RUN_MARKER]}")
    processes.kill(strays)
    if strays:
        listing = "\n".join(f"  pid {process.pid}: {process.command}" for process in strays)
        pytest.fail(f"the test run left {len(strays)} process(es) running (now killed):\n{listing}",
                    pytrace=False)
