"""Code the tests share: the throw-away project, the instrumented Catalyst, test keys, and the
rule for what a test does when the host lacks something it needs."""
import os
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
# Slow fixtures (unpacked kernels, kernel trees) are kept here between runs.
TEST_CACHE = Path(os.environ.get("GENTOO_ZFS_LIVECD_TEST_CACHE", "/var/tmp/gentoo-zfs-livecd-test-cache"))


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def require(condition, what: str, how_to_get_it: str) -> None:
    """Go on only if `condition` holds: otherwise skip the test, or fail it under CI=true,
    where every tool and fixture is installed and a missing one is a broken CI setup."""
    if condition:
        return
    message = f"{what}: {how_to_get_it}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing tool or fixture is a failure)", pytrace=False)
    pytest.skip(message)
