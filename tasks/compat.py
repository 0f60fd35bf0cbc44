"""`compat`: the kernel and ZFS versions the pinned tree gives, checked against each other."""
import dataclasses

from gentoo_zfs_livecd import pins
from gentoo_zfs_livecd.checkout import ZFS_KERNEL_RANGES
from gentoo_zfs_livecd.console import say
from tasks.doit_glue import context
from tasks.doit_glue.actions import doit_action, settings_changed

__all__ = ["task_compat"]



SETTINGS = ("arch", "kernel.mode", "kernel.sources", "kernel.version")


@doit_action
def check_compat(build) -> None:
    from gentoo_zfs_livecd.kernel import zfscompat
    # The pinned commit itself, not its squashfs: that is made only when a stage is built from it.
    tree = zfscompat.CommitTree(build.paths.bare_repo, build.snapshot_pin["sha"])
    result = zfscompat.snapshot_compat(tree, **zfscompat_arguments(build), ranges_path=ZFS_KERNEL_RANGES)
    pins.write(build.paths.pin("compat"), dataclasses.asdict(result))
    say(f"   compat: {result.kernel_package}-{result.kernel_version} with "
        f"{result.zfs_package}-{result.zfs_version} (supports Linux {result.linux_min} to {result.linux_max}, "
        f"from {result.bounds_from})")


def zfscompat_arguments(build) -> dict:
    dist = build.get("kernel.mode") == "dist"
    return {
        "arch": build.get("arch"),
        "kernel_package": "sys-kernel/gentoo-kernel" if dist else build.get("kernel.sources"),
        "kernel_pin": build.get("kernel.version"),
    }


def task_compat():
    """Check that the pinned tree's kernel is one its ZFS release supports."""
    build = context.current()
    return {
        "actions": [(check_compat, [build.declared(SETTINGS)])],
        "file_dep": [build.paths.pin("snapshot"), ZFS_KERNEL_RANGES],
        "targets": [build.paths.pin("compat")],
        "uptodate": [settings_changed(build, SETTINGS)],
        "task_dep": ["snapshot"],
        "verbosity": 2,
    }
