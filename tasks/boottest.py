"""`boottest`: boot the ISO in QEMU and let its self-test use ZFS before anything is published."""
import json
import shutil
import sys

from doit import create_after

from gentoo_zfs_livecd import atomic, pins
from gentoo_zfs_livecd.console import prefix, say
from gentoo_zfs_livecd.errors import UserError
from tasks.doit_glue import context
from tasks.doit_glue.actions import doit_action, settings_changed

__all__ = ["task_boottest", "boot_test_wanted", "boot_test_result"]

SETTINGS = ("boottest.enabled", "boottest.timeout", "boottest.accel", "boottest.memory", "boottest.qemu")
# What users boot: the ISO through GRUB under SeaBIOS and under UEFI firmware (OVMF).
FIRMWARES = ("bios", "uefi")


def boot_test_wanted(build) -> bool:
    """Whether a boot test belongs to this build (never in a rehearsal: its ISO is a placeholder)."""
    return build.get("boottest.enabled") != "false" and not build.rehearsal


def result_file(build):
    return build.paths.boottest_dir / "result.json"


def boot_test_result(build) -> dict | None:
    """The last boot test's result (a small JSON record, read like a pin), or None."""
    return pins.read(result_file(build))


@doit_action
def run_boot_test(build) -> None:
    from gentoo_zfs_livecd.iso import qemuboot
    result_file(build).unlink(missing_ok=True)
    qemu = build.get("boottest.qemu")
    if build.get("boottest.enabled") == "auto" and shutil.which(qemu) is None:
        say(f"   boottest: skipped: {qemu} not found (Debian/Gentoo package qemu-system-x86 / "
            "app-emulation/qemu); publish will refuse an untested ISO")
        atomic.write_text(result_file(build), json.dumps({"outcome": "skipped", "reason": f"{qemu} not found"}))
        return
    # Probed once: the answer does not depend on the firmware.
    accel = qemuboot.choose_accel(build.get("boottest.accel"), qemuboot.find_qemu(qemu), build.paths.iso,
                                  build.paths.boottest_dir / "work")
    boots = []
    for firmware in FIRMWARES:
        console_log = build.paths.boot_console.with_name(f"console-{firmware}.log")
        try:
            result = qemuboot.run_boot_test(
                build.paths.iso, build.paths.boottest_dir / "work" / firmware, console_log, firmware=firmware,
                timeout=build.get("boottest.timeout"), accel=accel, qemu=qemu,
                memory_mb=build.get("boottest.memory"))
        except qemuboot.BootTestError as err:
            sys.stderr.write("".join(f"{prefix()}  | {line}\n" for line in err.tail))
            raise UserError(f"{firmware}: {err}") from None
        boots.append({"firmware": firmware, "kernel": result.kernel, "zfs": result.zfs,
                      "userland": result.userland, "accel": result.accel, "console_log": str(console_log)})
        say(f"   boottest: {firmware}: ZFS self-test passed (Linux {result.kernel}, ZFS {result.zfs}, "
            f"userland {result.userland}, {result.accel})")
    atomic.write_text(result_file(build), json.dumps({
        "outcome": "passed", "kernel": boots[0]["kernel"], "zfs": boots[0]["zfs"], "boots": boots}, indent=2))


@create_after(executed="specs")
def task_boottest():
    """Boot the ISO in QEMU (BIOS and UEFI) and run its ZFS self-test on a scratch disk."""
    build = context.current()
    if not boot_test_wanted(build):
        return
    yield {
        "basename": "boottest",
        "actions": [(run_boot_test, [build.declared(SETTINGS)])],
        "file_dep": [build.paths.iso],
        "targets": [result_file(build)],
        "uptodate": [settings_changed(build, SETTINGS)],
        "task_dep": ["verify"],
        "verbosity": 2,
    }
