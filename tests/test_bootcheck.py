"""Boot test harness against real QEMU, booting a small Catalyst-shaped ISO built here.

Needs the Debian packages qemu-system-x86, busybox-static and xorriso, and a Debian kernel
unpacked into the cache (see tests/bootsupport.py for the commands).
"""
import shutil
import subprocess
from pathlib import Path

import pytest

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.iso import grubcfg, qemuboot
from tests import bootsupport

REPO = Path(__file__).resolve().parent.parent
SELFTEST_SCRIPT = REPO / "overlay/root_overlay/etc/local.d/zfs-selftest.start"
CONSOLE_LOGS = Path(__file__).parent / "data/console"
QEMU = "qemu-system-x86_64"
VOLID = "Gentoo-amd64-20260628"
SCRATCH_MB = 256


@pytest.fixture(scope="module")
def guest_kernel():
    kernel = bootsupport.find_guest_kernel()
    if kernel is None:
        pytest.skip(f"no Debian kernel in {bootsupport.CACHE_DIR}/kernel; {bootsupport.PREPARE_HINT}")
    return kernel


@pytest.fixture(scope="module")
def tools():
    missing = [tool for tool in (QEMU, "xorriso") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: apt-get install qemu-system-x86 xorriso")
    if not (bootsupport.BUSYBOX.is_file() and bootsupport.is_static_elf(bootsupport.BUSYBOX)):
        pytest.fail(f"{bootsupport.BUSYBOX} is not a static busybox: apt-get install busybox-static")


@pytest.fixture(scope="module")
def guest(tmp_path_factory, guest_kernel, tools):
    work = tmp_path_factory.mktemp("guest")
    initramfs = bootsupport.build_initramfs(work / "initramfs.gz", guest_kernel, SELFTEST_SCRIPT)
    return guest_kernel, initramfs


@pytest.fixture(scope="module")
def accel(tmp_path_factory, guest_kernel, tools):
    """Probed once: KVM only if the guest kernel really starts under it."""
    return qemuboot.choose_accel("auto", QEMU, guest_kernel.vmlinuz, tmp_path_factory.mktemp("probe"))


def make_iso(tmp_path, guest, testcase, **paths):
    kernel, initramfs = guest
    marker = f"marker-{testcase}-{tmp_path.name}"
    iso = bootsupport.build_test_iso(tmp_path / f"{testcase}.iso", tmp_path / "iso-root", vmlinuz=kernel.vmlinuz,
                                     initramfs=initramfs, testcase=testcase, volid=VOLID, marker=marker, **paths)
    return iso, marker


def boot(tmp_path, iso, accel, **options):
    options = {"timeout": 90, "accel": accel, "memory_mb": 512, "scratch_size_mb": SCRATCH_MB,
               "poweroff_grace": 20, **options}
    return qemuboot.run_boot_test(iso, tmp_path / "work", tmp_path / "logs/console.log", **options)


def guest_lines(console_log, prefix):
    text = qemuboot.clean_console_text(console_log.read_text())
    return [line.removeprefix(prefix).strip() for line in text.split("\n") if line.startswith(prefix)]


# --- real boots ------------------------------------------------------------------------------

def test_passing_boot_returns_facts_and_boots_like_catalyst_grub_cfg(tmp_path, guest, accel):
    iso, marker = make_iso(tmp_path, guest, "pass")
    result = boot(tmp_path, iso, accel)

    assert result.kernel == guest[0].release
    assert result.zfs == bootsupport.FAKE_ZFS_VERSION
    assert result.accel == accel
    assert result.powered_off
    log = tmp_path / "logs/console.log"
    assert result.console_log == log
    [cmdline] = guest_lines(log, "TESTGUEST cmdline:")
    words = cmdline.split()
    assert "dokeymap" not in words
    for word in ("nodhcp", "testcase=pass", f"root=live:CDLABEL={VOLID}", "rd.live.dir=/",
                 "rd.live.squashimg=image.squashfs", "cdroot", "console=ttyS0,115200", "rd.shell=0", "zfs_selftest"):
        assert word in words
    assert "rd.live.ram=1" not in words, "arguments must come from the first menuentry"
    assert guest_lines(log, "TESTGUEST vda sectors:") == [str(SCRATCH_MB * 2048)]
    assert guest_lines(log, "TESTGUEST cd marker:") == [marker]
    assert (tmp_path / "work/scratch.img").stat().st_blocks == 0, "scratch disk must be sparse"


def test_fail_line_is_one_line_error_with_console_tail(tmp_path, guest, accel):
    # Non-default kernel paths: extraction must follow grub.cfg's linux/initrd lines.
    iso, _ = make_iso(tmp_path, guest, "fail", kernel_path="/boot/kernel-alt", initrd_path="/boot/alt/initrd.img")
    with pytest.raises(qemuboot.BootTestError) as caught:
        boot(tmp_path, iso, accel)

    err = caught.value
    log = tmp_path / "logs/console.log"
    assert str(err) == (f"boot test failed: ZFS-SELFTEST FAIL zpool-create: cannot create 'zselftest': I/O error "
                        f"(console log: {log})")
    assert isinstance(err, UserError)
    assert err.console_log == log and log.is_file()
    assert err.powered_off
    assert 0 < len(err.tail) <= qemuboot.TAIL_LINES
    assert any(line.startswith("ZFS-SELFTEST FAIL zpool-create") for line in err.tail)
    assert "TESTGUEST testcase: fail" in err.tail


def test_silent_guest_times_out_and_qemu_is_killed(tmp_path, guest, accel):
    iso, _ = make_iso(tmp_path, guest, "silent")
    with pytest.raises(qemuboot.BootTestError) as caught:
        boot(tmp_path, iso, accel, timeout=25)

    log = tmp_path / "logs/console.log"
    assert str(caught.value) == f"boot test failed: no ZFS-SELFTEST line within 25 s, QEMU killed (console log: {log})"
    assert not caught.value.powered_off
    assert "TESTGUEST idle" in caught.value.tail, "the guest must have booted; the timeout is the verdict"
    assert bootsupport.qemu_pids_using(tmp_path / "work/scratch.img") == []


def test_kernel_panic_is_a_failure(tmp_path, guest, accel):
    iso, _ = make_iso(tmp_path, guest, "panic")
    with pytest.raises(qemuboot.BootTestError) as caught:
        boot(tmp_path, iso, accel)

    message = str(caught.value)
    assert message.startswith("boot test failed: Kernel panic - not syncing: Attempted to kill init!")
    assert "\n" not in message
    assert any("end Kernel panic" in line for line in caught.value.tail), "the trace after the panic is kept"
    assert bootsupport.qemu_pids_using(tmp_path / "work/scratch.img") == []


def test_real_selftest_script_reports_modprobe_failure_and_powers_off(tmp_path, guest, accel):
    iso, _ = make_iso(tmp_path, guest, "script")
    with pytest.raises(qemuboot.BootTestError) as caught:
        boot(tmp_path, iso, accel)

    err = caught.value
    assert str(err).startswith("boot test failed: ZFS-SELFTEST FAIL modprobe: modprobe zfs failed (exit 1): ")
    assert err.powered_off, "the script must power the guest off by itself"
    log_text = qemuboot.clean_console_text((tmp_path / "logs/console.log").read_text())
    before, _, after = log_text.partition("TESTGUEST noflag rc=0")
    assert after, "without the exact word zfs_selftest the script must exit 0"
    assert "ZFS-SELFTEST" not in before.split("TESTGUEST testcase: script")[1]
    assert after.count("ZFS-SELFTEST FAIL") == 1, "exactly one result line on the serial console"
    assert "SCRIPT-RETURNED" not in after


def test_missing_qemu_is_one_line_error(tmp_path):
    with pytest.raises(UserError) as caught:
        qemuboot.run_boot_test(tmp_path / "any.iso", tmp_path / "work", tmp_path / "console.log",
                                qemu="qemu-system-x86_64-absent")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("QEMU binary qemu-system-x86_64-absent not found")
    assert "Debian package qemu-system-x86 " in message


def test_kvm_probe_tells_running_kernel_from_one_that_never_starts(tmp_path, guest):
    kernel, initramfs = guest
    assert qemuboot.kernel_starts(QEMU, "tcg", kernel.vmlinuz, tmp_path)
    assert not qemuboot.kernel_starts(QEMU, "tcg", initramfs, tmp_path, time_limit=5)


def test_choose_accel_forced_modes_and_bad_mode(tmp_path):
    assert qemuboot.choose_accel("tcg", QEMU, "unused", tmp_path) == "tcg"
    assert qemuboot.choose_accel("kvm", QEMU, "unused", tmp_path) == "kvm"
    with pytest.raises(UserError, match="'hvf' is not one of auto, kvm, tcg"):
        qemuboot.choose_accel("hvf", QEMU, "unused", tmp_path)


# --- console logs --------------------------------------------------------------------------

@pytest.mark.parametrize("name, outcome, fields", [
    ("debian-guest-pass.log", "pass", {"kernel": "6.1.0-57-amd64", "zfs": "2.3.4-r0-gentoo"}),
    ("synthetic-openrc-pass-interleaved.log", "pass", {"kernel": "6.12.41-gentoo-dist", "zfs": "2.3.4-r0-gentoo"}),
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


# --- boot arguments ------------------------------------------------------------------------

def test_selftest_arguments_from_catalyst_template():
    cfg = bootsupport.catalyst_grub_cfg("VOLID", "dokeymap nodhcp", "/boot/gentoo", "/boot/gentoo.igz")
    entry = grubcfg.first_entry(cfg, "grub.cfg")
    assert qemuboot.selftest_boot_args(entry.args) == (
        "nodhcp root=live:CDLABEL=VOLID rd.live.dir=/ rd.live.squashimg=image.squashfs cdroot "
        "console=ttyS0,115200 rd.shell=0 zfs_selftest")
    assert qemuboot.selftest_boot_args(("console=ttyS0,115200", "zfs_selftest")) == (
        "console=ttyS0,115200 zfs_selftest rd.shell=0")


def test_iso_without_grub_cfg_is_a_user_error(tmp_path, tools):
    (tmp_path / "root").mkdir()
    (tmp_path / "root/README.txt").write_text("no boot files\n")
    iso = tmp_path / "plain.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-r", "-J", "-o", str(iso), str(tmp_path / "root")],
                   check=True, stdin=subprocess.DEVNULL)
    with pytest.raises(UserError, match=r"plain.iso: cannot read /boot/grub/grub.cfg from the ISO"):
        qemuboot.read_boot_entry(iso)


# --- the self-test script on the host -------------------------------------------------------

@pytest.mark.parametrize("shell", [["bash"], ["busybox", "sh"]])
def test_selftest_script_parses_and_is_executable(shell):
    if shutil.which(shell[0]) is None:
        pytest.fail(f"{shell[0]} missing")
    assert SELFTEST_SCRIPT.stat().st_mode & 0o111
    subprocess.run([*shell, "-n", str(SELFTEST_SCRIPT)], check=True)


def test_selftest_script_does_nothing_without_the_flag_under_bash():
    if "zfs_selftest" in Path("/proc/cmdline").read_text().split():
        pytest.skip("this host's own kernel command line holds zfs_selftest")
    done = subprocess.run(["bash", str(SELFTEST_SCRIPT)], capture_output=True, text=True, timeout=10)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
