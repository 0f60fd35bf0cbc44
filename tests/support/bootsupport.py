"""Build a tiny Catalyst-shaped test ISO: Debian's kernel, a busybox initramfs, a Catalyst grub.cfg.

The initramfs /init speaks the self-test protocol of tasks/bootcheck.py. Which scenario it
plays is chosen by a `testcase=<name>` word in the grub.cfg boot arguments, so the harness's
argument extraction decides what the guest does.

The kernel comes from a Debian linux-image package unpacked (not installed) into the cache:

    mkdir -p /var/tmp/gentoo-zfs-livecd-test-cache && cd /var/tmp/gentoo-zfs-livecd-test-cache
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
    apt-get download "$pkg" && dpkg -x "$pkg"_*.deb kernel
"""
import gzip
import os
import stat
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

CACHE_DIR = Path(os.environ.get("GENTOO_ZFS_LIVECD_TEST_CACHE", "/var/tmp/gentoo-zfs-livecd-test-cache"))
BUSYBOX = Path("/bin/busybox")
FAKE_ZFS_VERSION = "2.3.4-r0-gentoo"
GUEST_SCRIPT = "/etc/local.d/zfs-selftest.start"
# virtio_pci is the transport virtio_blk needs but does not list as a dependency.
GUEST_MODULES = ("virtio_pci", "virtio_blk", "ata_piix", "sr_mod", "isofs")
PREPARE_HINT = (
    "unpack a Debian kernel: cd /var/tmp/gentoo-zfs-livecd-test-cache && "
    "apt-get download linux-image-<ver>-amd64 && dpkg -x linux-image-*.deb kernel"
)


@dataclass(frozen=True)
class GuestKernel:
    vmlinuz: Path
    modules: Path
    release: str


def find_guest_kernel(cache_dir: Path = CACHE_DIR) -> GuestKernel | None:
    """The unpacked Debian kernel in the cache, or None."""
    root = cache_dir / "kernel"
    for vmlinuz in sorted(root.glob("boot/vmlinuz-*")):
        release = vmlinuz.name.removeprefix("vmlinuz-")
        for modules in (root / "lib/modules" / release, root / "usr/lib/modules" / release):
            if modules.is_dir():
                return GuestKernel(vmlinuz, modules, release)
    return None


def is_static_elf(path: Path) -> bool:
    """True for an ELF64 executable without a PT_INTERP program header (no dynamic loader)."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3 for i in range(phnum))


def _modinfo_depends(ko: Path) -> list[str]:
    for field in ko.read_bytes().split(b"\0"):
        if field.startswith(b"depends="):
            return [name for name in field[8:].decode().split(",") if name]
    return []


def module_load_order(modules_dir: Path, wanted) -> list[Path]:
    """The .ko files for `wanted` and their dependencies, dependencies first."""
    by_name = {ko.name.removesuffix(".ko").replace("-", "_"): ko for ko in modules_dir.rglob("*.ko")}
    order: list[Path] = []

    def visit(name):
        ko = by_name[name.replace("-", "_")]
        if ko in order:
            return
        for dep in _modinfo_depends(ko):
            visit(dep)
        order.append(ko)

    for name in wanted:
        visit(name)
    return order


def newc_archive(entries) -> bytes:
    """A cpio "newc" archive. entries: (path, mode, data bytes, rdev (major, minor))."""
    out = bytearray()
    for ino, (name, mode, data, rdev) in enumerate([*entries, ("TRAILER!!!", 0, b"", (0, 0))], start=1):
        encoded = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        out += b"070701" + b"".join(b"%08X" % value for value in fields) + encoded
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


INIT = r"""#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for ko in $(cat /mods/order); do insmod "/mods/$ko" || echo "TESTGUEST insmod $ko failed"; done
for i in $(seq 50); do [ -b /dev/vda ] && [ -b /dev/sr0 ] && break; sleep 0.2; done
echo "TESTGUEST cmdline: $(cat /proc/cmdline)"
echo "TESTGUEST vda sectors: $(cat /sys/block/vda/size)"
mkdir -p /mnt/cd
mount -t iso9660 -o ro /dev/sr0 /mnt/cd && echo "TESTGUEST cd marker: $(cat /mnt/cd/testguest.txt)"
testcase=none
for word in $(cat /proc/cmdline); do
    case $word in testcase=*) testcase=${word#testcase=} ;; esac
done
echo "TESTGUEST testcase: $testcase"
case $testcase in
pass)
    printf '\033[32;01m * \033[0mZFS-SELFTEST PASS kernel=%s zfs=@ZFS@\r\n' "$(uname -r)"
    sleep 1
    poweroff -f
    ;;
fail)
    echo "ZFS-SELFTEST FAIL zpool-create: cannot create 'zselftest': I/O error"
    sleep 1
    poweroff -f
    ;;
panic)
    exit 1
    ;;
script)
    # Run it as OpenRC's local service does: stdout and stderr to /dev/null.
    echo "quiet zfs_selftest.debug=1 nozfs_selftest zfs_selftest_disk=/dev/vda" > /run/cmdline-noflag
    mount --bind /run/cmdline-noflag /proc/cmdline
    @SCRIPT@ > /dev/null 2>&1
    echo "TESTGUEST noflag rc=$?"
    umount /proc/cmdline
    @SCRIPT@ > /dev/null 2>&1
    echo "TESTGUEST SCRIPT-RETURNED rc=$?"
    ;;
esac
echo "TESTGUEST idle"
while :; do sleep 3600; done
""".replace("@ZFS@", FAKE_ZFS_VERSION).replace("@SCRIPT@", GUEST_SCRIPT)


def build_initramfs(dest: Path, kernel: GuestKernel, selftest_script: Path) -> Path:
    """gzip'd initramfs with static busybox, the guest's modules, the test /init and the real self-test script."""
    modules = module_load_order(kernel.modules, GUEST_MODULES)
    dirs = ["bin", "dev", "etc", "etc/local.d", "mnt", "mods", "proc", "root", "run", "sys", "tmp"]
    entries = [(d, stat.S_IFDIR | 0o755, b"", (0, 0)) for d in dirs]
    entries += [
        ("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)),
        ("bin/busybox", stat.S_IFREG | 0o755, BUSYBOX.read_bytes(), (0, 0)),
        ("bin/sh", stat.S_IFLNK | 0o777, b"busybox", (0, 0)),
        ("init", stat.S_IFREG | 0o755, INIT.encode(), (0, 0)),
        (GUEST_SCRIPT.lstrip("/"), stat.S_IFREG | 0o755, selftest_script.read_bytes(), (0, 0)),
        ("mods/order", stat.S_IFREG | 0o644, "".join(f"{ko.name}\n" for ko in modules).encode(), (0, 0)),
    ]
    entries += [(f"mods/{ko.name}", stat.S_IFREG | 0o644, ko.read_bytes(), (0, 0)) for ko in modules]
    dest.write_bytes(gzip.compress(newc_archive(entries), compresslevel=1))
    return dest


def catalyst_grub_cfg(volid: str, bootargs: str, kernel_path: str, initrd_path: str) -> str:
    """grub.cfg as catalyst 4.1's iso-bootloader-setup.sh writes it for a dist-kernel."""
    line = f"{bootargs} root=live:CDLABEL={volid} rd.live.dir=/ rd.live.squashimg=image.squashfs cdroot"
    entries = []
    for title, extra in (("", ""), (" (cached)", " rd.live.ram=1")):
        entries.append(
            f"menuentry 'Boot LiveCD (kernel: gentoo){title}' --class gnu-linux --class os {{\n"
            f"\tsearch --no-floppy --set=root -l {volid}\n"
            f"\tlinux {kernel_path} {line}{extra}\n"
            f"\tinitrd {initrd_path}\n"
            "}\n"
        )
    return "set default=0\nset gfxpayload=keep\nset timeout=10\ninsmod all_video\n\n" + "\n".join(entries)


def build_test_iso(dest: Path, staging: Path, *, vmlinuz: Path, initramfs: Path, testcase: str, volid: str,
                   marker: str, kernel_path: str = "/boot/gentoo", initrd_path: str = "/boot/gentoo.igz") -> Path:
    """An ISO (Rock Ridge + Joliet, like grub-mkrescue's) whose first entry boots `testcase`."""
    files = {
        kernel_path: vmlinuz.read_bytes(),
        initrd_path: initramfs.read_bytes(),
        "/boot/grub/grub.cfg": catalyst_grub_cfg(volid, f"dokeymap nodhcp testcase={testcase}",
                                                 kernel_path, initrd_path).encode(),
        "/testguest.txt": marker.encode() + b"\n",
    }
    for inner, data in files.items():
        path = staging / inner.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-iso-level", "3", "-r", "-J", "-V", volid,
                    "-o", str(dest), str(staging)], check=True, stdin=subprocess.DEVNULL)
    return dest


def qemu_pids_using(path: Path) -> list[int]:
    """Processes whose command line mentions `path` (to prove a QEMU was reaped)."""
    needle = str(path).encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if needle in (proc / "cmdline").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids
