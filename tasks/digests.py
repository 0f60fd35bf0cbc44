"""`digests`: <iso>.DIGESTS and <iso>.sha256 in one read, optionally signed."""
from doit import create_after

from tasks.doit_glue import context
from tasks.doit_glue.actions import doit_action, settings_changed

__all__ = ["task_digests"]

SETTINGS = ("digests.algorithms", "digests.sign_key", "digests.gnupg_home")


def outputs(build) -> list:
    files = [build.paths.sidecar(".DIGESTS"), build.paths.sidecar(".sha256")]
    return files + ([build.paths.sidecar(".asc")] if build.get("digests.sign_key") else [])


@doit_action
def write_digests(build) -> None:
    from gentoo_zfs_livecd.release import sidecars
    iso = build.paths.iso
    sidecars.write_digests(iso, build.get("digests.algorithms"))
    if build.get("digests.sign_key"):
        sidecars.sign_release(iso, build.get("digests.sign_key"), build.get("digests.gnupg_home"))


@create_after(executed="specs")
def task_digests():
    """Write the ISO's DIGESTS and sha256 (all algorithms in one read), signed if configured."""
    build = context.current()
    paths = build.paths
    return {
        "actions": [(write_digests, [build.declared(SETTINGS)])],
        "file_dep": [paths.iso, paths.contents(paths.iso)],
        "targets": outputs(build),
        "uptodate": [settings_changed(build, SETTINGS)],
        "task_dep": ["iso"],
        "verbosity": 2,
    }
