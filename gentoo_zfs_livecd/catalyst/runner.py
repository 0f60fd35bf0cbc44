"""Running Catalyst: argv only, the full log in a file, one live progress line, checked outputs.

Catalyst writes its artifacts in place and exits 0 in several cases without writing them
(catalyst-4.md §5), so a stage's old targets are removed before it runs and every predicted
target must exist afterwards. A failed or killed run leaves no target behind that a later run
could take for a good one.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

from gentoo_zfs_livecd import atomic, lock, pins, stamps
from gentoo_zfs_livecd.catalyst.argv import CatalystArgv
from gentoo_zfs_livecd.console import prefix, say
from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.paths import STAGE_TARGETS
from gentoo_zfs_livecd.files import tail_lines

STEP = re.compile(r"Running action sequence: (\S+)|Creating .* tree snapshot (\S+)")
LOG_TAIL = 30
PLAIN_INTERVAL = 60  # seconds between progress lines when output is not a terminal


@cache
def run_id() -> str:
    """One log folder per doit process."""
    return time.strftime("%Y%m%d-%H%M%S")


def log_path(logs: Path, task: str) -> Path:
    """`logs/<run>/<task>.log`, with `logs/latest` pointing at the current run."""
    folder = logs / run_id()
    folder.mkdir(parents=True, exist_ok=True)
    atomic.symlink(run_id(), logs / "latest")
    return folder / f"{task}.log"


@cache
def preflight(catalyst: CatalystArgv, rehearsal: bool) -> None:
    """Refuse, in one line, a missing Catalyst, Catalyst 3.x, or a non-root user."""
    command = catalyst.command
    if shutil.which(command[0]) is None:
        raise UserError(f"catalyst.command: {command[0]!r} not found; install dev-util/catalyst 4.x "
                        "on a Gentoo host, or try the whole build without it: ./build-iso rehearse=1")
    try:
        usage = subprocess.run(catalyst.usage(), capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UserError(f"catalyst.command: {' '.join(command)} --help failed ({err})")
    if "git-treeish" not in usage:
        raise UserError(f"catalyst.command: {' '.join(command)} is Catalyst 3.x or older (no "
                        "git-treeish in --help); this project needs Catalyst 4.x")
    if not rehearsal and os.geteuid() != 0:
        raise UserError("Catalyst must run as root; run ./build-iso as root (or rehearse: ./build-iso rehearse=1)")


def run(argv: list, log: Path, label: str, expected: float | None = None) -> int:
    """Run `argv`, streaming its output into `log`, with a one-line progress (and the time left,
    when `expected` seconds are known from earlier runs); its exit code."""
    started = time.monotonic()
    tty = sys.stdout.isatty()
    shown = [0.0]
    with open(log, "ab") as out:
        out.write(f"*** Running command: {' '.join(argv)}\n".encode())
        out.flush()
        # Catalyst keeps the build lock while it lives, so no second build starts on its targets
        # even when doit is killed (lock.py).
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True, pass_fds=lock.catalyst_fds())
        lock.note_catalyst(child.pid)
        try:
            for raw in child.stdout:
                out.write(raw)
                step = STEP.search(raw.decode(errors="replace"))
                if step and (tty or time.monotonic() - shown[0] >= PLAIN_INTERVAL):
                    shown[0] = time.monotonic()
                    _progress(label, step.group(1) or "creating the squashfs", started, tty, expected)
            return child.wait()
        except BaseException:
            _stop(child)
            raise
        finally:
            lock.note_catalyst(None)
            if tty:
                sys.stdout.write("\n")


# Signals that ended the run: a night stopped by SIGTERM is "interrupted", not "failed".
TERMINATED = []


def _terminate(signum, frame):
    TERMINATED.append(signum)
    raise KeyboardInterrupt


def stop_on_sigterm() -> None:
    """Turn SIGTERM (systemd's stop, timeout(1)) into KeyboardInterrupt, as Ctrl-C: `run` then
    ends Catalyst's process group, and doit saves the tasks that finished."""
    signal.signal(signal.SIGTERM, _terminate)


def _clock(seconds: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(seconds))


def _progress(label, step, started, tty, expected):
    elapsed = time.monotonic() - started
    left = f" (about {_clock(max(0.0, expected - elapsed))} left)" if expected else ""
    line = f"{prefix()}   {label}: {_clock(elapsed)}{left} {step}"
    if tty:
        sys.stdout.write("\r\033[K" + line)
        sys.stdout.flush()
    else:
        print(line, flush=True)


def _stop(child: subprocess.Popen) -> None:
    """Stop Catalyst and everything it started (its own process group)."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(child.pid, sig)
            child.wait(wait)
            return
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue


def fail(log: Path, text: str):
    """Show the end of the log, then raise the one-line error."""
    sys.stderr.write("".join(f"{prefix()}  | {line}\n" for line in tail_lines(log, LOG_TAIL)))
    raise UserError(f"{text}; full log: {log}")


def remove(files) -> None:
    for file in files:
        Path(file).unlink(missing_ok=True)


def expected_duration(history_file: Path, task: str) -> float | None:
    """Median of the task's earlier successful durations, from the nightly history."""
    from gentoo_zfs_livecd.nightly import history
    return history.median_duration(history.load(history_file), task)


# Catalyst's work folder (tmp/) unpacks the seed and builds in it, beside the new tarball: room
# for this many times the stage's last artifacts is asked for before it starts.
ROOM_FACTOR = 4
GIB = 1024 ** 3


def require_room(task: str, storedir: Path, produced: dict) -> None:
    """Refuse, in one line and before Catalyst runs, a stage the storedir has no room for: the
    need is ROOM_FACTOR x the size of what this stage produced last time (its attempt record)."""
    last = sum(int(stamp.get("size", 0)) for stamp in (produced or {}).values())
    if not last:
        return
    storedir.mkdir(parents=True, exist_ok=True)
    free, needed = shutil.disk_usage(storedir).free, ROOM_FACTOR * last
    if free < needed:
        raise UserError(f"{task}: {storedir} has {free / GIB:.1f} GiB free, but the last {task} needed about "
                        f"{needed / GIB:.1f} GiB ({ROOM_FACTOR} x its {last / GIB:.1f} GiB of artifacts); free "
                        "space there (the nightly prunes packages/, kerncache/ and tmp/) and run again")


def prune_caches(storedir: Path, rel_type: str, in_use: set, keep: int) -> list:
    """Catalyst's per-target folders under packages/, kerncache/ and tmp/ of `rel_type`: named
    `<target>-<subarch>[-<version_stamp>]`, and `tmp/<rel_type>/.autoresume-...` (gentoo/catalyst
    catalyst/base/stagebase.py set_pkgcache_path, set_kerncache_path, set_chroot_path,
    set_autoresume_path, at commit 92e0cbbbb6588087d60f68b8c33cf95f22550d1b). All but the `keep`
    newest of those the current build does not use (`in_use`, names) are removed. Only this
    rel_type's folders, which one config owns (lock.claim_rel_type)."""
    from gentoo_zfs_livecd.files import beyond_newest
    removed = []
    for area in ("packages", "kerncache", "tmp"):
        folder = Path(storedir) / area / rel_type
        if not folder.is_dir():
            continue
        unused = [entry for entry in folder.iterdir()
                  if entry.name.removeprefix(".autoresume-") not in in_use
                  and entry.is_dir() and not entry.is_symlink()]
        for old in beyond_newest(unused, keep, newest_key=lambda entry: entry.stat().st_mtime):
            shutil.rmtree(old)
            removed.append(old)
    return removed


def resumes(task: str, attempt: dict, inputs: str) -> bool:
    """Whether a run may keep Catalyst's autoresume state: only a retry of a failed attempt
    with identical inputs, and never for livecd-stage2. Its kernel step calls os.makedirs on
    /etc/kernel/config.d without exist_ok (Catalyst 4.0.0 to 4.1.1 and master df01e21b,
    stagebase._copy_kernel_config), so a retry in the kept chroot fails with FileExistsError."""
    return (STAGE_TARGETS[task] != "livecd-stage2"
            and attempt.get("inputs") == inputs and attempt.get("outcome") == "failed")


def ensure_snapshot(catalyst: CatalystArgv, rehearsal: bool, sha: str, sqfs: Path, logs: Path) -> None:
    """`catalyst -s <sha>` unless its squashfs exists: made only for a stage built from `sha`, so
    a moved tree that no stage is rebuilt for runs no Catalyst at all."""
    if sqfs.is_file():
        return
    preflight(catalyst, rehearsal)
    log = log_path(logs, "snapshot")
    say(f"   snapshot: catalyst -s {sha}; log {log}")
    code = run(catalyst.snapshot(sha), log, "snapshot")
    if code != 0:
        fail(log, f"snapshot: catalyst -s {sha} exited {code}")
    if not sqfs.is_file():
        fail(log, f"snapshot: catalyst exited 0 but did not write {sqfs}")


def build_stage(task: str, catalyst: CatalystArgv, rehearsal: bool, spec: str, targets: list,
                inputs: str, attempt_file: str, stamp_store: str, logs: str, history_file: str,
                record: dict | None = None) -> None:
    """doit action of a stage task: Catalyst with `-a` unless `resumes`.
    `record`: where to note what the stage holds, read in the one pass that hashes its targets."""
    preflight(catalyst, rehearsal)
    attempt = pins.read(attempt_file) or {}
    require_room(task, Path(targets[0]).parent, attempt.get("produced"))
    resume = resumes(task, attempt, inputs)
    remove(targets)
    for target in targets:
        stamps.forget(Path(stamp_store), target)
    pins.write(attempt_file, {"inputs": inputs, "outcome": "failed"})
    log = log_path(Path(logs), task)
    argv = catalyst.build(spec, clear_autoresume=not resume)
    say(f"   {task}: catalyst {'resuming' if resume else 'building'}; log {log}")
    code = run(argv, log, task, expected_duration(Path(history_file), task))
    if code != 0:
        fail(log, f"{task}: catalyst exited {code}")
    missing = [t for t in targets if not Path(t).is_file()]
    if missing:
        remove(targets)
        fail(log, f"{task}: catalyst exited 0 but did not write {missing[0]}")
    from gentoo_zfs_livecd.rebuild.record import hash_and_record
    from gentoo_zfs_livecd.release.hashing import hash_file
    digests = hash_and_record(task, targets, spec, record) if record else \
        {target: hash_file(target, ["sha512"])["sha512"] for target in targets}
    produced = {target: stamps.record(Path(stamp_store), target, digests[target]) for target in targets}
    pins.write(attempt_file, {"inputs": inputs, "outcome": "ok", "produced": produced})
