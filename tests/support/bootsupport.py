"""Debian kernel for the boot tests' guest, and small helpers (module order, cpio, Catalyst's grub.cfg).

The kernel comes from a Debian linux-image package unpacked (not installed) into the cache, as
.ci/run does:

    mkdir -p /var/tmp/gentoo-zfs-livecd-test-cache && cd /var/tmp/gentoo-zfs-livecd-test-cache
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
    apt-get download "$pkg" && dpkg -x "$pkg"_*.deb kernel
"""
from dataclasses import dataclass
from pathlib import Path

from tests.support import TEST_CACHE as CACHE_DIR
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
