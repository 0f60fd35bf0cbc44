"""doit's console output for this build: user errors as one line, rehearsals labelled."""
import sys

from doit.reporter import ConsoleReporter


def prefix() -> str:
    from . import context
    return "[rehearsal] " if context.rehearsal() else ""


def say(text: str, stream=None) -> None:
    """Print one line of the build's own output (labelled when rehearsing)."""
    (stream or sys.stdout).write(f"{prefix()}{text}\n")
    (stream or sys.stdout).flush()


class BuildReporter(ConsoleReporter):
    """ConsoleReporter whose failures caused by user input are a single `ERROR:` line."""

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
