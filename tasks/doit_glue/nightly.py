"""The nightly build: lock, re-resolve the moving inputs, build, check, publish, tell someone.

`gentoo-zfs-livecd-nightly --config config.yaml` (cron, systemd) or `doit nightly`. Unlike
Gentoo's catalyst-auto it rebuilds only what changed, and a failed night never replaces the
release that is published.
"""
import argparse
import datetime
import json
import shutil
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from gentoo_zfs_livecd import atomic, checkout, pins, project
from gentoo_zfs_livecd.catalyst.runner import TERMINATED, stop_on_sigterm
from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.files import beyond_newest
from gentoo_zfs_livecd.lock import FileLock, LockTaken, claim_rel_type

DODO = checkout.DODO

class Tee:
    """Write to the run's log file, and to the terminal when there is one."""

    def __init__(self, log, terminal):
        self.log, self.terminal = log, terminal if terminal.isatty() else None

    def write(self, text):
        self.log.write(text)
        if self.terminal:
            self.terminal.write(text)
        return len(text)

    def flush(self):
        self.log.flush()
        if self.terminal:
            self.terminal.flush()

    def isatty(self):
        return self.terminal is not None


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def run_graph(build, tasks, output) -> int:
    """doit's own `run` (the lock is already ours) on dodo.py with refresh=1, printing to `output`."""
    from doit.cmd_base import DodoTaskLoader
    from doit.doit_cmd import DoitMain
    variables = [f"config={build.config.path}", "refresh=1"] + (["rehearse=1"] if build.rehearsal else [])
    main = DoitMain(DodoTaskLoader(), config_filenames=(), extra_config={"GLOBAL": {"outfile": output}})
    return main.run(["-f", str(DODO), *tasks, *variables])


def notification_settings(build) -> dict:
    return {
        "smtp": {"host": build.get("notify.smtp.host"), "port": build.get("notify.smtp.port"),
                 "from": build.get("notify.smtp.from"), "to": build.get("notify.smtp.to")},
        "webhook": {"url": build.get("notify.webhook.url")},
    }


def tell(build, outcome, failed_task, log_path, start, warnings=()) -> list:
    """Notify the configured people; delivery problems are returned, never raised."""
    if build.rehearsal:
        return []
    from gentoo_zfs_livecd.nightly import notify
    event = notify.BuildEvent(outcome=outcome, log_path=str(log_path), failed_task=failed_task,
                              iso_name=build.paths.iso_name, start=start, end=now(), warnings=tuple(warnings))
    return notify.notify(notification_settings(build), event)


def task_log(task: str, fallback: Path) -> Path:
    """The failed task's own log (Catalyst's output) when it has one, else the nightly's."""
    candidate = fallback.parent / f"{task}.log"
    return candidate if candidate.is_file() else fallback


def upload(build) -> str | None:
    """rsync the release to `publish.upload`, as Gentoo's automation uploads to its mirror."""
    destination = build.get("publish.upload")
    if not destination or build.rehearsal:
        return None
    source = build.paths.publish_dir / pins.read(build.paths.pin("published"))["release"]
    argv = ["rsync", "--archive", "--omit-dir-times", "--delay-updates", str(source),
            str(build.paths.publish_dir / "latest-iso.txt"), destination]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=6 * 3600)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"upload to {destination} failed: {err}"
    if done.returncode != 0:
        return f"upload to {destination} failed: rsync exited {done.returncode}: {done.stderr.strip()[-300:]}"
    return None


def housekeeping(build) -> None:
    """After a good night: old run logs, Catalyst's work folders, tarballs of other stamps."""
    logs = [p for p in build.paths.logs.iterdir() if p.is_dir() and not p.is_symlink()]
    for old in beyond_newest(logs, build.get("nightly.keep_logs"), newest_key=lambda p: p.name):
        shutil.rmtree(old, ignore_errors=True)
    for stage in build.chain():
        subprocess.run(build.catalyst.purge_tmp(build.paths.spec(stage)), capture_output=True, timeout=3600)
    remove_old_stamps(build)


def remove_old_stamps(build) -> list:
    """Stage artifacts this project built for other version stamps (never the seed, never a
    file it did not build itself: only those with a stamp record). The paths name each stage's
    artifacts by its stage pin, so a stage kept from an older tree keeps its artifacts."""
    from gentoo_zfs_livecd import stamps
    paths = build.paths
    current = {p for stage in build.chain() for p in paths.targets(stage)}
    seed = Path(paths.seed_subpath).name + "."
    removed = []
    for stage in build.chain():
        for old in paths.builds.glob(f"{paths.unversioned(stage)}-*"):
            if old in current or old.name.startswith(seed) or not old.is_file() or old.is_symlink():
                continue
            if stamps.known(paths.stamps, old) or old.name.endswith(".CONTENTS.gz"):
                old.unlink()
                stamps.forget(paths.stamps, old)
                removed.append(old)
    return removed


def decision_lines(build, ran) -> list:
    """The keep-or-rebuild line of every stage, when `specs` decided them in this run."""
    if "specs" not in ran or not build.paths.decisions.is_file():
        return []
    from gentoo_zfs_livecd.rebuild.decide import Decision
    return [Decision(**item).line for item in json.loads(build.paths.decisions.read_text())]


def record(build, start, outcome, failed_task, log_path):
    from gentoo_zfs_livecd.nightly import history
    from tasks.doit_glue import reporter
    ran = [name for name, status, _ in reporter.EVENTS if status == "ran"]
    # A night that did not build or check an ISO of its own names none: the one on disk is older.
    iso, artifacts, versions = None, {}, {}
    if outcome == "succeeded" or "verify" in ran:
        info = json.loads(build.paths.build_info.read_text()) if build.paths.build_info.is_file() else {}
        iso = build.paths.iso_name
        artifacts = {p.name: p.stat().st_size for p in build.paths.targets("iso") if p.is_file()}
        versions = {"kernel": info.get("kernel_release"), "zfs": info.get("zfs_version")}
    entry = history.RunRecord(
        start=start, end=now(), outcome=outcome, failed_task=failed_task,
        tasks=[history.TaskRun(name, status, seconds) for name, status, seconds in reporter.EVENTS],
        iso_name=iso, artifacts=artifacts, versions=versions, log_path=str(log_path),
        decisions=decision_lines(build, ran), rehearsal=build.rehearsal)
    history.append(build.paths.history, entry)


def running_marker(build) -> Path:
    """Present while a nightly runs: the next one finds it left by a night that was killed."""
    return build.paths.build_dir / "nightly.running"


def report_unfinished(build, label: str) -> None:
    """A night that ended without a word (SIGKILL, power cut) gets its history line and its
    notification now."""
    from gentoo_zfs_livecd.nightly import history
    marker = running_marker(build)
    try:
        left = json.loads(marker.read_text())
    except FileNotFoundError:
        return
    except ValueError:
        left = {}
    begun, log = left.get("start") or "?", left.get("log_path")
    history.append(build.paths.history, history.RunRecord(start=begun, end=now(), outcome="unfinished",
                                                          failed_task=None, log_path=log))
    print(f"{label}the nightly started {begun} did not finish (killed or power cut); log: {log}")
    for problem in tell(build, "unfinished", None, log, begun):
        print(f"{label}{problem}")
    marker.unlink()


def warn_stale_lock(build, holder, label: str) -> None:
    """A lock held longer than nightly.stale_lock_hours is news, not a quiet night."""
    hours = holder.hours()
    if hours is None or hours < build.get("nightly.stale_lock_hours"):
        return
    print(f"{label}the build lock {build.paths.lock} has been held for {hours:.1f} hours by pid {holder.pid}; "
          "check whether that build hangs")
    for problem in tell(build, f"blocked for {hours:.0f} hours by pid {holder.pid}", None, None, now()):
        print(f"{label}{problem}")


def prune_caches(build) -> list:
    """Catalyst's package, kernel and work folders of targets and stamps this build no longer uses."""
    from gentoo_zfs_livecd.catalyst import render, runner
    paths = build.paths
    in_use = set()
    for stage in build.chain():
        in_use |= {paths.unversioned(stage), f"{paths.unversioned(stage)}-{paths.stamp(stage)}"}
    in_use.add(render.iso_pkgcache(build).name)  # the ISO's package cache of this kernel config
    return runner.prune_caches(paths.storedir, paths.rel_type, in_use, build.get("nightly.keep_caches"))


def failure_lines() -> list:
    """The failing tasks' own error lines, as doit printed them into the log."""
    from tasks.doit_glue import reporter
    return [f"ERROR: {name}: {line}" for name, message in reporter.FAILURES for line in message.splitlines()]


def nightly(config_path: Path, rehearse: bool) -> int:
    """The whole nightly run; its exit code. Every ending this process sees (success, a failed
    task, any exception, SIGINT, SIGTERM) leaves a history line and, unless the night succeeded
    quietly, a notification."""
    from gentoo_zfs_livecd.catalyst import runner
    build = project.make_build(config_path, rehearse)
    label = "[rehearsal] " if rehearse else ""
    lock = FileLock(build.paths.lock, for_catalyst=True)
    try:
        lock.acquire()
    except LockTaken as err:
        print(f"{label}{err}")
        warn_stale_lock(build, err.holder, label)
        return 0
    try:
        start = now()
        log_path = runner.log_path(build.paths.logs, "nightly")
        try:
            claim_rel_type(build.paths.storedir, build.paths.rel_type, build.config.path)
            report_unfinished(build, label)
            atomic.write_text(running_marker(build), json.dumps({"start": start, "log_path": str(log_path)}))
            return night(config_path, rehearse, build, start, log_path, label)
        except KeyboardInterrupt:
            signal_name = "SIGTERM" if TERMINATED else "SIGINT"
            return ended_badly(build, start, "interrupted", f"stopped by {signal_name}", log_path, label, 130)
        except Exception as err:  # noqa: BLE001 - a night must tell, whatever ended it
            words = str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
            return ended_badly(build, start, "failed", words, log_path, label, 1)
    finally:
        try:
            running_marker(build).unlink(missing_ok=True)
        except OSError as err:
            print(f"{label}{running_marker(build)}: cannot remove ({err})")
        lock.release()


def ended_badly(build, start, outcome, words, log_path, label, code) -> int:
    """A night that ended outside a task: say so, record it, tell someone."""
    from tasks.doit_glue import reporter
    failed = next((name for name, status, _ in reporter.EVENTS if status == "failed"), "nightly")
    print(f"{label}nightly {outcome} in {failed}: {words}; log: {log_path}")
    try:
        record(build, start, outcome, failed, log_path)
    except Exception as err:  # noqa: BLE001 - the notification must still go out
        print(f"{label}{err}")
    for problem in tell(build, outcome, failed, log_path, start):
        print(f"{label}{problem}")
    return code


def night(config_path, rehearse, build, start, log_path, label) -> int:
    from tasks.doit_glue import reporter
    with open(log_path, "a") as log:
        tee = Tee(log, sys.stdout)
        with redirect_stdout(tee), redirect_stderr(tee):
            code = run_graph(build, ["publish"], tee)
    build = project.make_build(config_path, rehearse)  # the stamp may have moved
    ran = [name for name, status, _ in reporter.EVENTS if status == "ran"]
    failed = next((name for name, status, _ in reporter.EVENTS if status == "failed"), None)
    if code != 0:
        outcome = "interrupted" if TERMINATED and not failed else "failed"
        failed = failed or "nightly"
        print(f"{label}nightly {outcome} in {failed}; log: {task_log(failed, log_path)}")
        for line in failure_lines():
            print(f"{label}  {line}")
        problems = tell(build, outcome, failed, task_log(failed, log_path), start)
        record(build, start, outcome, failed, log_path)
        for problem in problems:
            print(f"{label}{problem}")
        return 1
    problem = upload(build) if "publish" in ran else None
    housekeeping(build)
    prune_caches(build)
    record(build, start, "succeeded", None, log_path)
    if "publish" not in ran:
        print(f"{label}up to date: {build.paths.iso_name}")
    else:
        print(f"{label}published: {build.paths.publish_dir / pins.read(build.paths.pin('published'))['release']}")
    warnings = ([problem] if problem else []) + expiring_keys(build)
    problems = warnings + (tell(build, "succeeded", None, log_path, start, warnings)
                           if build.get("notify.on_success") or warnings else [])
    for line in problems:
        print(f"{label}{line}")
    return 4 if problem else 0


# Gentoo renews its signing keys ahead of their expiry; a month leaves time to update the keyring.
KEY_WARNING_DAYS = 28


def expiring_keys(build, now_epoch: float | None = None) -> list:
    """One line per pinned key that stops signing within KEY_WARNING_DAYS (the night went on)."""
    from gentoo_zfs_livecd.inputs import openpgp
    if build.rehearsal:
        return []
    now_epoch = time.time() if now_epoch is None else now_epoch
    pinned = [("snapshot", build.get("snapshot.keyring"), build.get("snapshot.fingerprint"))
              if build.get("snapshot.treeish") == "stable" else None,
              ("seed", build.get("seed.keyring"), build.get("seed.fingerprint"))
              if not build.get("seed.file") else None]
    lines = []
    for input_name, keyring, fingerprint in filter(None, pinned):
        if fingerprint == openpgp.ANY_KEY:
            continue  # a keyring of many keys: no one key to warn about
        try:
            ends = openpgp.signing_expiry(keyring, fingerprint)
        except UserError as err:
            lines.append(f"{input_name}: {err}")
            continue
        if ends is not None and ends - now_epoch < KEY_WARNING_DAYS * 86400:
            day = datetime.datetime.fromtimestamp(ends, datetime.timezone.utc).date()
            lines.append(f"{input_name}.fingerprint: key {fingerprint} stops signing on {day}: update "
                         f"{keyring} (sec-keys/openpgp-keys-gentoo-release) before then")
    return lines


def main(argv=None) -> int:
    """The console script's work, in the checkout the launcher found (its --project)."""
    parser = argparse.ArgumentParser(prog="gentoo-zfs-livecd-nightly", description=__doc__.splitlines()[0])
    parser.add_argument("--project", default=str(checkout.ROOT),
                        help="the gentoo-zfs-livecd checkout (default: the one this command belongs to)")
    parser.add_argument("--config", help="config file (default: config.yaml of the project)")
    parser.add_argument("--rehearse", action="store_true", help="use the Catalyst emulator, under build/rehearsal/")
    args = parser.parse_args(argv)
    stop_on_sigterm()
    try:
        config = Path(args.config) if args.config else Path(args.project) / "config.yaml"
        return nightly(config.absolute(), args.rehearse)
    except UserError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 3
