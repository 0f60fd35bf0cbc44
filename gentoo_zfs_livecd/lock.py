"""The one kind of lock: an exclusive flock(2) on a file, taken at once or refused.

flock(2) is released by the kernel when its holder dies, so a lock left by a killed process
never blocks; the file's text only says who holds it. Held for a whole `doit` run or nightly
(the build folder's lock) or for one publish (the publish folder's lock).
"""
import fcntl
import os
import time
from pathlib import Path

from gentoo_zfs_livecd.errors import UserError


class LockTaken(UserError):
    """Someone else holds the lock."""


def another_build(pid: str, since: str) -> str:
    return f"another build is running (pid {pid}, since {since})"


class FileLock:
    """`busy(pid, since)` words the refusal when another process holds `path`."""

    def __init__(self, path, busy=another_build):
        self.path = Path(path)
        self.busy = busy
        self.fd = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").split()
            os.close(fd)
            pid, since = (holder + ["?", "?"])[:2]
            raise LockTaken(self.busy(pid, since)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {time.strftime('%H:%M')}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
