"""The one kind of lock: an exclusive flock(2) on a file, taken at once or refused.

flock(2) belongs to the open file, so it is held as long as any process holds a descriptor of
it. The build's lock is handed to every Catalyst the build starts: a Catalyst left running by a
killed build still holds it, and no second build starts on the same targets. The next build
that finds the lock held by such an orphan (the build named in the file is gone, its Catalyst
group alive) ends that group and takes over. The file's text says who holds it:
`<pid> <HH:MM> <epoch> <process start>` and, while Catalyst runs, `catalyst <process group>`.
Held for a whole `doit` run or nightly (the build folder's lock) or for one publish (the
publish folder's lock).
"""
import fcntl
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gentoo_zfs_livecd.errors import UserError

# Locks this process holds, by path: a nested `doit` run in the same process uses the held one.
_held: dict = {}


@dataclass
class Holder:
    """What a lock file says about its holder."""
    pid: str = "?"
    since: str = "?"
    epoch: float | None = None
    started: str | None = None
    catalyst: int | None = None

    @classmethod
    def parse(cls, text: str) -> "Holder":
        holder = cls()
        for line in text.splitlines():
            words = line.split()
            if len(words) == 2 and words[0] == "catalyst" and words[1].isdigit():
                holder.catalyst = int(words[1])
            elif words and words[0].isdigit():
                fields = (words + [None] * 4)[:4]
                holder.pid, holder.since = fields[0], fields[1] or "?"
                holder.epoch = float(fields[2]) if fields[2] and fields[2].replace(".", "", 1).isdigit() else None
                holder.started = fields[3]
        return holder

    def hours(self) -> float | None:
        return None if self.epoch is None else (time.time() - self.epoch) / 3600

    def build_gone(self) -> bool:
        """The build that wrote the file no longer runs (a reused pid counts as gone)."""
        if not self.pid.isdigit():
            return False
        start = process_start(int(self.pid))
        return start is None or (self.started not in (None, "?") and start != self.started)


class LockTaken(UserError):
    """Someone else holds the lock."""

    def __init__(self, message: str, holder: Holder | None = None):
        super().__init__(message)
        self.holder = holder or Holder()


def another_build(pid: str, since: str) -> str:
    return f"another build is running (pid {pid}, since {since})"


def process_start(pid: int) -> str | None:
    """The start time of `pid` (clock ticks since boot), None when no such process runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_group(pgid: int, grace: float = 30) -> None:
    """SIGTERM to a process group, SIGKILL to what is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not group_alive(pgid):
                return
            time.sleep(0.1)


def _wait_for_flock(fd: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)


class FileLock:
    """`busy(pid, since)` words the refusal when another process holds `path`. With
    `for_catalyst`, Catalyst runs started while it is held inherit it (see `catalyst_fds`), and an
    orphaned Catalyst group holding it is ended and the lock taken over."""

    def __init__(self, path, busy=another_build, for_catalyst=False):
        self.path = Path(path)
        self.busy = busy
        self.for_catalyst = for_catalyst
        self.fd = None
        self.nested = False

    def acquire(self) -> None:
        if self.path in _held:
            self.nested = True
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = Holder.parse(os.pread(fd, 400, 0).decode(errors="replace"))
            if not (self.for_catalyst and self._take_from_orphan(fd, holder)):
                os.close(fd)
                raise LockTaken(self.busy(holder.pid, holder.since), holder) from None
        self.fd = fd
        self._write(None)
        _held[self.path] = self

    def _take_from_orphan(self, fd: int, holder: Holder) -> bool:
        if holder.catalyst is None or not holder.build_gone() or not group_alive(holder.catalyst):
            return False
        end_group(holder.catalyst)
        if not _wait_for_flock(fd, 10):
            return False
        sys.stderr.write(f"took over {self.path}: build {holder.pid} is gone; ended the Catalyst it left "
                         f"running (process group {holder.catalyst})\n")
        sys.stderr.flush()
        return True

    def _write(self, catalyst: int | None) -> None:
        start = process_start(os.getpid()) or "?"
        text = f"{os.getpid()} {time.strftime('%H:%M')} {time.time():.0f} {start}\n"
        if catalyst is not None:
            text += f"catalyst {catalyst}\n"
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, text.encode(), 0)

    def release(self) -> None:
        if self.nested:
            self.nested = False
            return
        if self.fd is not None:
            _held.pop(self.path, None)
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


def catalyst_fds() -> tuple:
    """Descriptors of the build locks this process holds: a Catalyst started now keeps them."""
    return tuple(lock.fd for lock in _held.values() if lock.for_catalyst)


def note_catalyst(pgid: int | None) -> None:
    """Record in every build lock held the Catalyst process group now running (or none)."""
    for lock in _held.values():
        if lock.for_catalyst:
            lock._write(pgid)


def claim_rel_type(storedir: Path, rel_type: str, config: Path) -> None:
    """Record that `config` builds `rel_type` in `storedir`; refuse, in one line, a second config
    with the same storedir and rel_type: Catalyst would write both builds' artifacts to the
    same paths. The record is `<storedir>/gentoo-zfs-livecd-owners`, `<rel_type> <config>` lines."""
    record = Path(storedir) / "gentoo-zfs-livecd-owners"
    record.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(record, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        owners = dict(line.split(" ", 1) for line in os.pread(fd, 1 << 20, 0).decode().splitlines() if " " in line)
        owner = owners.get(rel_type)
        if owner is not None and owner != str(config) and Path(owner).is_file():
            raise UserError(f"{config}: rel_type {rel_type!r} in storedir {storedir} belongs to {owner}; "
                            "give one of the two configs its own rel_type (or storedir)")
        if owner != str(config):
            owners[rel_type] = str(config)
            text = "".join(f"{kind} {path}\n" for kind, path in sorted(owners.items()))
            os.ftruncate(fd, 0)
            os.pwrite(fd, text.encode(), 0)
            os.fsync(fd)
    finally:
        os.close(fd)
