"""doit's console output for this build: user errors as one line, rehearsals labelled."""
import time

from doit.reporter import ConsoleReporter

from gentoo_zfs_livecd.console import prefix

# What the last run in this process did, task by task: (name, status, seconds), where status is
# "ran", "skipped" or "failed". The nightly turns it into its history record.
EVENTS: list = []


class BuildReporter(ConsoleReporter):
    """ConsoleReporter whose failures caused by user input are a single `ERROR:` line."""

    def __init__(self, outstream, options):
        super().__init__(outstream, options)
        self.started = {}
        EVENTS.clear()

    def execute_task(self, task):
        self.started[task.name] = time.monotonic()
        super().execute_task(task)

    def _event(self, task, status):
        if task.actions and not task.name.startswith("_"):
            seconds = time.monotonic() - self.started.get(task.name, time.monotonic())
            EVENTS.append((task.name, status, round(seconds, 3)))

    def add_success(self, task):
        self._event(task, "ran")

    def skip_uptodate(self, task):
        self._event(task, "skipped")
        super().skip_uptodate(task)

    def add_failure(self, task, fail):
        self._event(task, "failed")
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
