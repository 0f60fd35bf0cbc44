"""Real boots: the CD's self-test against real OpenZFS, in QEMU, through the ISO's own boot loader.

The guest (tests/support/zfsguest.py) is built from the cache .ci/zfs-guest-fixture fills; without
that cache these tests skip, and with CI=true they fail. Every fault below is a real one: a missing
disk, a disk too small, a guest without zfs.ko, an older userland against the module.
"""
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from gentoo_zfs_livecd.iso import qemuboot
from tests.support import bootsupport, require, zfsguest

pytestmark = pytest.mark.vm

QEMU = "qemu-system-x86_64"
VOLID = "Gentoo-ZFS-amd64-20260628"
BOOTARGS = "dokeymap nodhcp"
VERDICT_TIMEOUT = 600
IDLE_TIMEOUT = 90
ISO_CACHE = bootsupport.CACHE_DIR / "zfs-guest" / "isos"


@pytest.fixture(scope="session")
def fixture():
    missing = [tool for tool in (QEMU, "grub-mkrescue", "mformat", "xorriso", "depmod", "ldd") if shutil.which(tool) is None]
    require(not missing, f"missing {', '.join(missing)}",
            "apt-get install qemu-system-x86 grub-pc-bin grub-efi-amd64-bin mtools xorriso kmod")
    try:
        qemuboot.find_ovmf()
        return zfsguest.find_zfs_fixture()
    except (zfsguest.FixtureMissing, qemuboot.UserError) as exc:
        require(False, "no real-OpenZFS guest", str(exc))


def _inputs_digest(fixture, variant) -> str:
    digest = hashlib.sha256(repr((variant, fixture)).encode())
    for path in (zfsguest.SELFTEST_SCRIPT, zfsguest.COMMANDS_FILE, Path(zfsguest.__file__), Path(bootsupport.__file__)):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def iso_for(fixture):
    """variant -> ISO, built once per input digest into the test cache."""
    variants = {
        "standard": {"userland": fixture.userland},
        "no-module": {"userland": fixture.userland, "with_module": False},
        "mismatch": {"userland": fixture.mismatch_userland},
        "flag": {"userland": fixture.userland},
    }

    def build(variant):
        iso = ISO_CACHE / f"{variant}-{_inputs_digest(fixture, variant)}.iso"
        if iso.is_file():
            return iso
        ISO_CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=ISO_CACHE) as work:
            work = Path(work)
            root = zfsguest.build_guest_root(work / "root", fixture, **variants[variant])
            initramfs = zfsguest.pack_initramfs(root, work / "initramfs.gz")
            bootargs = BOOTARGS + (" zfs_selftest" if variant == "flag" else "")
            zfsguest.build_grub_iso(work / "test.iso", work / "iso", vmlinuz=fixture.kernel.vmlinuz,
                                    initramfs=initramfs, volid=VOLID, bootargs=bootargs)
            os.replace(work / "test.iso", iso)
        for stale in ISO_CACHE.glob(f"{variant}-*.iso"):
            if stale != iso:
                stale.unlink()
        return iso

    return build


@pytest.fixture(scope="session")
def accel(iso_for, tmp_path_factory):
    """Chosen once, as the product does with boottest.accel: auto."""
    return qemuboot.choose_accel("auto", QEMU, iso_for("standard"), tmp_path_factory.mktemp("probe"))


@pytest.fixture(autouse=True)
def no_qemu_left(tmp_path):
    yield
    assert bootsupport.qemu_pids_using(tmp_path) == [], "a QEMU outlived its test"


def boot(tmp_path, iso, accel, **options):
    options = {"timeout": VERDICT_TIMEOUT, "accel": accel, "memory_mb": 1024, "scratch_size_mb": 512,
               "poweroff_grace": 30, **options}
    try:
        return qemuboot.run_boot_test(iso, tmp_path / "work", tmp_path / "console.log", **options)
    finally:
        # The console of every boot goes into the test log (pytest -rA / on failure).
        sys.stdout.write((tmp_path / "console.log").read_text(errors="replace"))


def fail_verdict(tmp_path, iso, accel, **options):
    with pytest.raises(qemuboot.BootTestError) as caught:
        boot(tmp_path, iso, accel, **options)
    err = caught.value
    assert err.powered_off, "the self-test powers the guest off after its verdict"
    verdict = qemuboot.parse_console((tmp_path / "console.log").read_text(errors="replace"))
    assert verdict.outcome == "fail"
    return verdict


@pytest.mark.parametrize("firmware, media", [("bios", "cdrom"), ("uefi", "cdrom"), ("bios", "usb")])
def test_selftest_passes_on_real_zfs(tmp_path, fixture, iso_for, accel, firmware, media):
    result = boot(tmp_path, iso_for("standard"), accel, firmware=firmware, media=media)

    assert result.kernel == fixture.kernel.release
    assert result.zfs.split("-")[0] == fixture.zfs_version
    assert result.userland.split("-")[0] == fixture.zfs_version
    assert (result.firmware, result.media, result.powered_off) == (firmware, media, True)
    log = (tmp_path / "console.log").read_text(errors="replace")
    assert "TESTGUEST disks: virtio-zfs-selftest" in log, "the disk was found by its serial, through udev"
    assert log.count("ZFS-SELFTEST") == 1


def test_no_scratch_disk_fails_at_the_disk_step(tmp_path, iso_for, accel):
    verdict = fail_verdict(tmp_path, iso_for("flag"), accel, scratch_size_mb=None)
    assert verdict.step == "disk"
    assert verdict.message.startswith("no scratch disk")


def test_disk_too_small_for_a_pool_fails_at_the_pool_step(tmp_path, iso_for, accel):
    verdict = fail_verdict(tmp_path, iso_for("standard"), accel, scratch_size_mb=32)
    assert verdict.step == "pool"
    assert "zpool create" in verdict.message and "less than the minimum device size" in verdict.message


def test_guest_without_the_module_fails_at_modprobe(tmp_path, fixture, iso_for, accel):
    verdict = fail_verdict(tmp_path, iso_for("no-module"), accel)
    assert verdict.step == "modprobe"
    assert "modprobe zfs failed" in verdict.message and "not found" in verdict.message


def test_older_userland_against_the_module_fails_at_the_version_step(tmp_path, fixture, iso_for, accel):
    verdict = fail_verdict(tmp_path, iso_for("mismatch"), accel)
    older = fixture.mismatch_userland.name.removeprefix("userland-")
    assert verdict.step == "version"
    assert verdict.message.startswith(f"userland {older}-")
    assert f"does not match module {fixture.zfs_version}-" in verdict.message


def test_without_trigger_the_selftest_does_nothing_and_the_harness_times_out(tmp_path, iso_for, accel):
    with pytest.raises(qemuboot.BootTestError) as caught:
        boot(tmp_path, iso_for("standard"), accel, scratch_size_mb=None, timeout=IDLE_TIMEOUT)

    log = tmp_path / "console.log"
    assert str(caught.value) == (f"boot test failed: no ZFS-SELFTEST line within {IDLE_TIMEOUT} s, "
                                 f"QEMU killed (console log: {log})")
    assert not caught.value.powered_off
    text = log.read_text(errors="replace")
    assert "TESTGUEST local service done" in text, "the guest ran its local.d scripts; the timeout is the verdict"
    assert "ZFS-SELFTEST" not in text


def test_probe_counts_an_accelerator_as_working_when_it_keeps_pace_with_tcg(tmp_path, fixture):
    assert qemuboot.accel_starts_kernel(QEMU, fixture.kernel.vmlinuz, tmp_path, candidate="tcg")
    assert not qemuboot.accel_starts_kernel(QEMU, zfsguest.SELFTEST_SCRIPT, tmp_path, candidate="tcg", cap=20)


def test_guest_has_only_the_cds_commands(tmp_path, fixture):
    root = zfsguest.build_guest_root(tmp_path / "root", fixture, userland=fixture.userland)
    on_path = {path.name for path in (root / "usr/bin").iterdir()}
    assert on_path <= set(zfsguest.livecd_commands()), sorted(on_path - set(zfsguest.livecd_commands()))
    assert {"bash", "sh", "zpool", "zfs", "zgenhostid", "modprobe", "udevadm", "sha256sum", "poweroff"} <= on_path
    assert "cmp" not in on_path and (root / "usr/bin/sh").readlink() == Path("bash")
    for link, target in (("bin", "usr/bin"), ("sbin", "usr/bin"), ("usr/sbin", "bin")):
        assert (root / link).readlink() == Path(target), "every PATH directory is the one checked above"
    rules = {path.name for path in (root / "lib/udev/rules.d").iterdir()}
    assert {"60-persistent-storage.rules", "69-vdev.rules", "90-zfs.rules"} <= rules
