"""The boot-test harness without a VM: console verdicts, QEMU command lines, errors.

Real boots are in tests/test_boot_zfs.py.
"""
import subprocess
from pathlib import Path

import pytest

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.iso import qemuboot

CONSOLE_LOGS = Path(__file__).parent / "data/console"
QEMU = "qemu-system-x86_64"


def test_missing_qemu_is_one_line_error(tmp_path):
    with pytest.raises(UserError) as caught:
        qemuboot.run_boot_test(tmp_path / "any.iso", tmp_path / "work", tmp_path / "console.log",
                                qemu="qemu-system-x86_64-absent")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("QEMU binary qemu-system-x86_64-absent not found")
    assert "Debian package qemu-system-x86 " in message


def test_choose_accel_forced_modes_and_bad_mode(tmp_path):
    assert qemuboot.choose_accel("tcg", QEMU, "unused", tmp_path) == "tcg"
    assert qemuboot.choose_accel("kvm", QEMU, "unused", tmp_path) == "kvm"
    with pytest.raises(UserError, match="'hvf' is not one of auto, kvm, tcg"):
        qemuboot.choose_accel("hvf", QEMU, "unused", tmp_path)


# --- console logs --------------------------------------------------------------------------

@pytest.mark.parametrize("name, outcome, fields", [
    ("zfs-guest-bios-usb-pass.log", "pass",
     {"kernel": "6.1.0-57-amd64", "zfs": "2.3.2-2~bpo12+2", "userland": "2.3.2-2~bpo12+2"}),
    # PASS lines of the earlier format (no userland field) are no verdict.
    ("debian-guest-pass.log", "none", {}),
    ("synthetic-openrc-pass-interleaved.log", "none", {}),
    ("debian-guest-selftest-modprobe-fail.log", "fail",
     {"step": "modprobe", "message": "modprobe zfs failed (exit 1): modprobe: can't change directory to "
                                     "'/lib/modules': No such file or directory"}),
    ("debian-guest-kernel-panic.log", "panic", {"message": "Attempted to kill init! exitcode=0x00000100"}),
    ("debian-guest-no-verdict.log", "none", {}),
])
def test_parse_recorded_console_logs(name, outcome, fields):
    verdict = qemuboot.parse_console((CONSOLE_LOGS / name).read_text(errors="replace"))
    assert verdict.outcome == outcome
    for key, value in fields.items():
        assert getattr(verdict, key) == value


def test_parse_console_takes_the_first_verdict_and_ignores_script_source():
    text = ('say "ZFS-SELFTEST PASS kernel=$(uname -r) zfs=$zfs_version"\n'
            "\x1b[1mZFS-SELFTEST FAIL import: cannot import 'zselftest': no such pool\x1b[0m\r\n"
            "Kernel panic - not syncing: Attempted to kill init!\n")
    verdict = qemuboot.parse_console(text)
    assert (verdict.outcome, verdict.step, verdict.message) == ("fail", "import", "cannot import 'zselftest': no such pool")
    assert verdict.line == "ZFS-SELFTEST FAIL import: cannot import 'zselftest': no such pool"


def test_console_tail_is_clean_and_bounded():
    text = "".join(f"\x1b[32mline {i}\x1b[0m\r\n" for i in range(100))
    tail = qemuboot.console_tail(text)
    assert tail == [f"line {i}" for i in range(60, 100)]


def test_pass_line_needs_every_field():
    line = "ZFS-SELFTEST PASS kernel=6.12.41-gentoo-dist zfs=2.3.4-r0-gentoo userland=2.3.4-r1-gentoo"
    verdict = qemuboot.line_verdict("[   12.5] " + line)
    assert (verdict.outcome, verdict.kernel, verdict.zfs, verdict.userland) == (
        "pass", "6.12.41-gentoo-dist", "2.3.4-r0-gentoo", "2.3.4-r1-gentoo")
    assert qemuboot.line_verdict(line.replace(" userland=2.3.4-r1-gentoo", "")).outcome == "none"


# --- the QEMU command line ---------------------------------------------

def _argv(**options):
    defaults = {"accel": "tcg", "memory_mb": 512, "cpus": 2, "iso": "/x/a.iso", "scratch": "/x/s.img",
                "serial_log": "/x/serial.log"}
    return qemuboot.qemu_command(QEMU, **{**defaults, **options})


def test_qemu_boots_the_iso_through_firmware_never_a_kernel_directly():
    for firmware, media in (("bios", "cdrom"), ("uefi", "cdrom"), ("bios", "usb")):
        ovmf = (Path("/fw/code.fd"), Path("/w/vars.fd")) if firmware == "uefi" else None
        argv = _argv(firmware=firmware, media=media, ovmf=ovmf)
        assert not {"-kernel", "-initrd", "-append"} & set(argv)
        assert "virtio-blk-pci,drive=scratch,serial=zfs-selftest" in argv
        assert ("if=pflash,format=raw,readonly=on,file=/fw/code.fd" in argv) == (firmware == "uefi")
        assert ("if=pflash,format=raw,file=/w/vars.fd" in argv) == (firmware == "uefi")
        boot_device = "ide-cd,drive=iso,bootindex=0" if media == "cdrom" else "usb-storage,drive=iso,bootindex=0"
        assert boot_device in argv
    assert not any("scratch" in word for word in _argv(scratch=None))


def test_bad_firmware_and_missing_ovmf_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="firmware 'coreboot'"):
        _argv(firmware="coreboot")
    with pytest.raises(UserError, match="install the Debian package ovmf"):
        qemuboot.find_ovmf(((str(tmp_path / "code.fd"), str(tmp_path / "vars.fd")),))


def test_iso_without_grub_cfg_is_a_user_error(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root/README.txt").write_text("no boot files\n")
    iso = tmp_path / "plain.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-r", "-J", "-o", str(iso), str(tmp_path / "root")],
                   check=True, stdin=subprocess.DEVNULL)
    with pytest.raises(UserError, match=r"plain.iso: cannot read /boot/grub/grub.cfg from the ISO"):
        qemuboot.read_boot_entry(iso)
