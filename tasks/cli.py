"""doit commands of this project: `run` under the build lock (later: `nightly`, `report`)."""
import signal
import sys

from doit.cmd_run import Run

from . import context
from .lock import BuildLock, LockTaken
from .reporter import prefix


def stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so doit saves the tasks that finished."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


class LockedRun(Run):
    """doit's `run`, holding the build folder's lock; a second build is refused at once."""

    def execute(self, params, args):
        build = context.current()
        stop_on_sigterm()
        try:
            with BuildLock(build.paths.lock):
                return super().execute(params, args)
        except LockTaken as err:
            sys.stderr.write(f"{prefix()}ERROR: {err}\n")
            return 3

