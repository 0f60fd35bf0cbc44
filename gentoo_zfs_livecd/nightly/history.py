"""Run history: one JSON line per nightly run, and what past runs say about the next one.

The history file is the one file that is appended to rather than replaced: a run adds one
line with a single O_APPEND write followed by fsync, so a crash leaves at worst one torn
last line, which `load` skips.

A line looks like:

    {"start": "2026-08-20T02:00:03+00:00", "end": "2026-08-20T05:41:17+00:00",
     "outcome": "succeeded", "failed_task": null,
     "iso_name": "install-amd64-zfs-20260819T161003Z.iso",
     "tasks": [{"name": "stage1", "status": "ran", "seconds": 4711.2}, ...],
     "artifacts": {"install-amd64-zfs-20260819T161003Z.iso": 1029701632},
     "versions": {"kernel": "6.12.41-gentoo-dist", "zfs": "2.3.4"},
     "log_path": "build/config/logs/20260820T020003Z/nightly.log",
     "decisions": ["stage1: kept (built from 1a2b3c4; ...)", "iso: rebuild (sys-fs/zfs-kmod changed)"]}
"""
import json
import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gentoo_zfs_livecd.errors import UserError

MEDIAN_WINDOW = 10


@dataclass(frozen=True)
class TaskRun:
    name: str
    # "ran": its actions ran and succeeded; "skipped": doit found it up to date;
    # "failed": its actions failed; "not-run": the run ended before reaching it.
    status: str
    seconds: float = 0.0


@dataclass(frozen=True)
class RunRecord:
    """One nightly run. `start`/`end` are ISO 8601 timestamps; sizes are bytes."""
    start: str
    end: str
    # "succeeded", "failed", "interrupted" (SIGINT/SIGTERM) or "unfinished" (it never said how it
    # ended: SIGKILL, power cut; written by the next run)
    outcome: str
    tasks: list[TaskRun] = field(default_factory=list)
    failed_task: str | None = None
    iso_name: str | None = None
    artifacts: dict[str, int] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    log_path: str | None = None
    decisions: list[str] = field(default_factory=list)  # one line per stage: kept or rebuild, and why
    rehearsal: bool = False  # run against the Catalyst emulator (doit rehearse=1)

    def task(self, name: str) -> TaskRun | None:
        return next((t for t in self.tasks if t.name == name), None)

    @property
    def iso_size(self) -> int | None:
        return self.artifacts.get(self.iso_name) if self.iso_name else None


def to_line(record: RunRecord) -> bytes:
    return (json.dumps(asdict(record), sort_keys=True) + "\n").encode()


def from_dict(data: dict) -> RunRecord:
    """Build a record from a parsed line, ignoring keys a newer version may have added."""
    tasks = [TaskRun(name=t["name"], status=t["status"], seconds=float(t.get("seconds", 0.0)))
             for t in data.get("tasks", [])]
    return RunRecord(start=data["start"], end=data["end"], outcome=data["outcome"], tasks=tasks,
                     failed_task=data.get("failed_task"), iso_name=data.get("iso_name"),
                     artifacts=dict(data.get("artifacts") or {}),
                     versions=dict(data.get("versions") or {}), log_path=data.get("log_path"),
                     decisions=[str(line) for line in data.get("decisions") or []])


def append(path, record: RunRecord) -> None:
    """Add `record` as one line at the end of the history file `path` (created if missing).

    Raises UserError when the file cannot be written.
    """
    path = Path(path)
    line = to_line(record)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if not ends_with_newline(fd):
                # a torn last line (crash mid-write) must not swallow this record too
                line = b"\n" + line
            if os.write(fd, line) != len(line):
                raise OSError(f"short write of {len(line)} bytes")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise UserError(f"history file {path}: cannot append the run record ({exc}); "
                        "check that its folder is writable and the disk is not full") from exc


def ends_with_newline(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size == 0 or os.pread(fd, 1, size - 1) == b"\n"


def load(path) -> list[RunRecord]:
    """All readable records of the history file `path`, oldest first.

    A missing file is an empty history; lines that are not a valid record are skipped.
    Raises UserError when the file exists but cannot be read.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UserError(f"history file {path}: cannot be read ({exc}); check its permissions") from exc
    records = []
    for line in raw.splitlines():
        try:
            records.append(from_dict(json.loads(line)))
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
    return records


def median_duration(records: list[RunRecord], task: str,
                    window: int = MEDIAN_WINDOW) -> float | None:
    """Median seconds of `task` over the latest `window` runs where it ran and succeeded.

    Only recent runs count, since build times drift (package caches, new kernels).
    None when no run has timed it.
    """
    durations = [t.seconds for t in (r.task(task) for r in records) if t and t.status == "ran"]
    return statistics.median(durations[-window:]) if durations else None
