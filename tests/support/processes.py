"""Processes a test run started, found through /proc: what the session fixture in conftest.py
looks for when the run ends."""
import os
import signal
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Process:
    pid: int
    parent: int
    state: str
    command: str


def _read(pid: int) -> Process | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        argv = (PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name in parentheses may itself hold spaces and parentheses.
    state, parent = stat[stat.rindex(")") + 2:].split()[:2]
    return Process(pid, int(parent), state, argv.replace(b"\0", b" ").decode(errors="replace").strip())


def _carries(pid: int, marker: bytes) -> bool:
    try:
        return marker in (PROC / str(pid) / "environ").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False


def running() -> list:
    """Every live process (zombies are already dead and only wait to be reaped)."""
    found = (_read(int(entry.name)) for entry in PROC.iterdir() if entry.name.isdigit())
    return [process for process in found if process is not None and process.state != "Z"]


def started_by(root: int, marker: str) -> list:
    """Live processes below `root`, and those that left it (daemons, process groups of their own
    whose parent died) but still carry `marker` (NAME=value) in their environment."""
    processes = running()
    children = {}
    for process in processes:
        children.setdefault(process.parent, []).append(process.pid)
    below, todo = set(), list(children.get(root, []))
    while todo:
        pid = todo.pop()
        below.add(pid)
        todo.extend(children.get(pid, []))
    me = os.getpid()
    return [process for process in processes if process.pid != me and
            (process.pid in below or _carries(process.pid, marker.encode()))]


def kill(processes) -> None:
    for process in processes:
        try:
            os.kill(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
