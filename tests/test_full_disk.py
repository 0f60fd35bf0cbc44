"""A disk that fills up under a running task ends it in one line, not a traceback: a real small
tmpfs (the tests run as root, as CI does) fills up under a real write."""
import os
import subprocess
from pathlib import Path

import pytest
from doit.exceptions import TaskFailed

from gentoo_zfs_livecd import atomic
from tasks.doit_glue.actions import doit_action
from tests.support import require


@doit_action
def write(path, size):
    atomic.write_bytes(path, b"\0" * size)


@pytest.fixture
def small_disk(tmp_path):
    require(os.geteuid() == 0, "mounting a small tmpfs needs root", "run the tests as root (CI does)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_one_line_and_leaves_no_part(small_disk):
    failure = write(small_disk / "image.iso", 1 << 20)
    assert isinstance(failure, TaskFailed)
    message = str(failure.message)
    assert "\n" not in message and "No space left on device" in message
    assert message.endswith("free space (or make it writable) and run again: finished tasks are kept")
    assert list(small_disk.iterdir()) == []  # the temporary file is gone, nothing half-written


@doit_action
def read(path):
    return Path(path).read_bytes()


def test_other_os_errors_stay_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read(tmp_path / "missing")
