"""doit's console output for this build: user errors as one line, rehearsals labelled.

It is also where every run takes the build lock and makes its progress durable: doit creates
the reporter named in DOIT_CONFIG (dodo.py) for every run, however doit was started (`doit -f
/path/to/dodo.py` from elsewhere loads no plugin of pyproject.toml, so `LockedRun` alone would
not do), and only for runs: `doit list` stays free during a build.
"""
import threading
import time

from doit.exceptions import InvalidDodoFile
from doit.reporter import ConsoleReporter

from gentoo_zfs_livecd.console import prefix

# What the last run in this process did, task by task: (name, status, seconds), where status is
# "ran", "skipped" or "failed". The nightly turns it into its history record.
EVENTS: list = []
# The failed tasks' own error messages: (name, message). The nightly repeats them.
FAILURES: list = []


class BuildReporter(ConsoleReporter):
    """ConsoleReporter whose failures caused by user input are a single `ERROR:` line."""
    build_of = None  # the build whose lock a run takes; set by `locking`, since doit makes the reporter

    def __init__(self, outstream, options):
        super().__init__(outstream, options)
        self.started = {}
        EVENTS.clear()
        FAILURES.clear()
        self.lock = take_build_lock(self.build_of()) if self.build_of else None

    def _save_progress(self):
        """Commit doit's database now, not only at the end of the run (doit-notes.md §3.2): a
        stage that finished stays finished when a later one is killed. SqliteDB.dump() (doit
        0.37, dependency.py) also closes its connection, so this is its insert-and-commit half."""
        from doit.dependency import SqliteDB
        from doit.globals import Globals
        backend = getattr(Globals.dep_manager, "backend", None)
        if not isinstance(backend, SqliteDB):
            return
        for task_id in backend._dirty:
            backend._conn.execute("insert or replace into doit values (?,?)",
                                  (task_id, backend.codec.encode(backend._cache[task_id])))
        backend._conn.commit()

    def execute_task(self, task):
        self.started[task.name] = time.monotonic()
        super().execute_task(task)

    def _event(self, task, status):
        if task.actions and not task.name.startswith("_"):
            seconds = time.monotonic() - self.started.get(task.name, time.monotonic())
            EVENTS.append((task.name, status, round(seconds, 3)))

    def add_success(self, task):
        self._event(task, "ran")
        self._save_progress()

    def skip_uptodate(self, task):
        self._event(task, "skipped")
        super().skip_uptodate(task)

    def add_failure(self, task, fail):
        self._event(task, "failed")
        FAILURES.append((task.name, str(getattr(fail, "message", fail))))
        self._save_progress()
        super().add_failure(task, fail)

    def write(self, text):
        lines = text.splitlines(keepends=True)
        super().write("".join(prefix() + line if line.strip() else line for line in lines))

    def _write_failure(self, result, write_exception=True):
        fail = result["exception"]
        if not fail.traceback:
            for line in str(fail.message).splitlines():
                self.write(f"ERROR: {result['task'].name}: {line}\n")
            return
        super()._write_failure(result, write_exception)

    def complete_run(self):
        # Stage logs are streamed live and kept in files; doit's captured-output dump would
        # repeat them, so only doit's own runtime errors are printed here.
        if self.runtime_errors:
            self.write("Execution aborted.\n" + "\n".join(self.runtime_errors) + "\n")
        if self.lock:
            self.lock.release()


def locking(build_of) -> type:
    """The reporter class doit is given: BuildReporter taking the lock of the build `build_of()`."""
    return type("BuildReporter", (BuildReporter,), {"build_of": staticmethod(build_of)})


def take_build_lock(build):
    """The build folder's lock (already ours when `doit run`/the nightly took it); SIGTERM stops
    the run as Ctrl-C does, so Catalyst is ended and the finished tasks are saved."""
    from gentoo_zfs_livecd.catalyst.runner import stop_on_sigterm
    from gentoo_zfs_livecd.errors import UserError
    from gentoo_zfs_livecd.lock import FileLock, claim_rel_type
    lock = FileLock(build.paths.lock, for_catalyst=True)
    try:
        lock.acquire()
        claim_rel_type(build.paths.storedir, build.paths.rel_type, build.config.path)
    except UserError as err:
        lock.release()
        raise InvalidDodoFile(f"{prefix()}{err}") from None
    if threading.current_thread() is threading.main_thread():
        stop_on_sigterm()
    return lock
