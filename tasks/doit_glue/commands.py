"""doit commands of this project: `run` under the build lock (later: `nightly`, `report`)."""
import sys

from doit.cmd_base import Command
from doit.cmd_run import Run

from gentoo_zfs_livecd.console import prefix
from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.lock import FileLock, LockTaken
from tasks.doit_glue import context


class LockedRun(Run):
    """doit's `run`, holding the build folder's lock; a second build is refused at once."""

    def execute(self, params, args):
        # Imported here, not at the top: doit loads this module for every command, `list` too.
        from tasks.doit_glue.nightly import stop_on_sigterm
        build = context.current()
        stop_on_sigterm()
        try:
            with FileLock(build.paths.lock, for_catalyst=True):
                return super().execute(params, args)
        except LockTaken as err:
            sys.stderr.write(f"{prefix()}ERROR: {err}\n")
            return 3
        except KeyboardInterrupt:
            # Ctrl-C (or SIGTERM, turned into the same): the running Catalyst has been stopped.
            sys.stderr.write(f"{prefix()}interrupted; the running task was stopped; "
                             "run the same command again to go on\n")
            return 130



class NightlyCommand(Command):
    """`doit nightly`: the cron build (gentoo-zfs-livecd-nightly) from doit."""
    name = "nightly"
    doc_purpose = "refresh the moving inputs, build, check, publish and notify (the cron build)"
    doc_usage = "[config=PATH] [rehearse=1]"
    doc_description = None

    def execute(self, params, args):
        from gentoo_zfs_livecd.errors import UserError
        from tasks.doit_glue.nightly import nightly, stop_on_sigterm
        stop_on_sigterm()
        try:
            return nightly(context.config_path(), context.rehearsal())
        except UserError as err:
            sys.stderr.write(f"{prefix()}ERROR: {err}\n")
            return 3


class ReportCommand(Command):
    """`doit report`: an HTML page of the build history with plots."""
    name = "report"
    doc_purpose = "write build/<config>/report/index.html from the run history"
    doc_usage = "[config=PATH] [rehearse=1]"
    doc_description = None

    def execute(self, params, args):
        from gentoo_zfs_livecd.nightly.report import render_report
        paths = context.current().paths
        try:
            page = render_report(paths.history, paths.report_dir)
        except UserError as err:
            sys.stderr.write(f"{prefix()}ERROR: {err}\n")
            return 1
        sys.stdout.write(f"{prefix()}report: {page}\n")
        return 0
