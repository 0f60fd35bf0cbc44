"""`publish`: the verified (and boot-tested) ISO as a release, atomically; never by default."""

from doit import create_after

from gentoo_zfs_livecd import pins
from gentoo_zfs_livecd.console import say
from gentoo_zfs_livecd.errors import UserError
from tasks.boottest import boot_test_result, boot_test_wanted
from tasks.doit_glue import context
from tasks.doit_glue.actions import doit_action, settings_changed

__all__ = ["task_publish", "publish_release"]

SETTINGS = ("publish.dir", "publish.keep", "boottest.enabled")


def require_boot_test(build) -> None:
    if not boot_test_wanted(build):
        return
    result = boot_test_result(build) or {"outcome": "missing"}
    if result["outcome"] != "passed":
        raise UserError(f"publish: the ISO was not boot-tested ({result.get('reason', result['outcome'])}); "
                        "install QEMU (qemu-system-x86) or set boottest.enabled: false")


def release_name(build, files) -> str:
    """The version stamp; another build of the same stamp (a rebuild) gets `-2`, `-3`, ..."""
    from gentoo_zfs_livecd.release.publishing import is_same_release
    paths = build.paths
    name, number = paths.version_stamp, 1
    while (paths.publish_dir / name).exists() and not is_same_release(paths.publish_dir / name, files):
        number += 1
        name = f"{paths.version_stamp}-{number}"
    return name


def publish_release(build):
    """Publish the current ISO; returns the release folder."""
    from gentoo_zfs_livecd.release import publishing
    require_boot_test(build)
    paths = build.paths
    files = publishing.release_files(paths.iso, paths.build_info)
    folder = publishing.publish(files, paths.publish_dir, release_name(build, files), build.get("publish.keep"),
                             iso_name=paths.iso_name)
    pins.write(paths.pin("published"), {"release": folder.name, "iso": paths.iso_name})
    say(f"   publish: {folder}")
    return folder


@doit_action
def publish(build) -> None:
    publish_release(build)


@create_after(executed="specs")
def task_publish():
    """Publish the checked ISO, sidecars and build-info.json into publish.dir (only on request)."""
    build = context.current()
    paths = build.paths
    deps = [paths.iso, paths.sidecar(".DIGESTS"), paths.sidecar(".sha256"), paths.build_info]
    return {
        "actions": [(publish, [build.declared(SETTINGS)])],
        "uptodate": [settings_changed(build, SETTINGS)],
        "file_dep": deps,
        "targets": [paths.pin("published")],
        "task_dep": ["boottest" if boot_test_wanted(build) else "verify"],
        "verbosity": 2,
    }
