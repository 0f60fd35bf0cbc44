"""`release`: what a plain `doit` builds: the ISO and its checks, never publishing."""
from doit import create_after

from gentoo_zfs_livecd.console import say
from tasks.boottest import boot_test_wanted
from tasks.doit_glue import context

__all__ = ["task_release"]


def show_where(iso) -> None:
    say(f"ISO: {iso}")


@create_after(executed="specs")
def task_release():
    """Build the ISO and check it (the default: iso, digests, verify, boottest); say where it is."""
    build = context.current()
    checks = ["iso", "digests", "verify"] + (["boottest"] if boot_test_wanted(build) else [])
    return {"actions": [(show_where, [build.paths.iso])], "task_dep": checks, "verbosity": 2}
