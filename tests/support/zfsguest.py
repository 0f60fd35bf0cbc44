"""A boot-test guest that is honest about the live CD, on an ISO made the way Catalyst makes one.

The guest is an initramfs holding Debian's kernel modules for the scratch disk, the real zfs.ko and
spl.ko built by dkms for that kernel, the real zpool/zfs and their libraries, udev with its own and
OpenZFS's rules, bash as /bin/sh, and on PATH only commands of overlay/livecd-commands.txt. Its
/init does what the CD's boot does before OpenRC's `local` service (kernel filesystems, udev and
its coldplug), then runs /etc/local.d/*.start as that service does (openrc init.d/local.in: each
executable file through `eval`, output to /dev/null). A test double may do less than the CD, never
more: commands on the list that this machine lacks are simply absent.

The ISO is built by grub-mkrescue (BIOS and EFI GRUB, as Catalyst 4 does for amd64) with a
grub.cfg in the shape Catalyst writes, so QEMU boots it through its boot loader.

Everything comes from the test cache that .ci/zfs-guest-fixture fills (see its header).
"""
import gzip
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.bootsupport import CACHE_DIR, GuestKernel, catalyst_grub_cfg, find_guest_kernel, \
    module_load_order, newc_archive

REPO = Path(__file__).resolve().parents[2]
COMMANDS_FILE = REPO / "overlay/livecd-commands.txt"
SELFTEST_SCRIPT = REPO / "overlay/root_overlay/etc/local.d/zfs-selftest.start"
FIXTURE_HINT = "run .ci/zfs-guest-fixture as root (it needs the kernel .ci/run unpacks)"
# virtio_pci is the transport virtio_blk needs but does not list as a dependency.
DISK_MODULES = ("virtio_pci", "virtio_blk")
HOST_PATH = (Path("/usr/sbin"), Path("/usr/bin"), Path("/sbin"), Path("/bin"))
ROOT_PATH = ("sbin", "usr/sbin", "bin", "usr/bin")
LIB_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")
UDEVD = "lib/systemd/systemd-udevd"
# Programs the guest runs by path, not by name; both are on the command list.
NOT_ON_PATH = {"systemd-udevd"}

INIT = r"""#!/bin/bash
# PID 1 of the boot-test guest: the part of the CD's boot the self-test relies on, then OpenRC's
# local service. TESTGUEST lines are the guest's own notes for the test log.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
note() {
	echo "TESTGUEST $*" > /dev/ttyS0
}
note "init: $(uname -r)"
/lib/systemd/systemd-udevd --daemon
udevadm trigger --type=subsystems --action=add
udevadm trigger --type=devices --action=add
udevadm settle --timeout=60
note "disks: $(ls /dev/disk/by-id 2>&1 | tr '\n' ' ')"
for file in /etc/local.d/*.start; do
	if [ -x "$file" ]; then
		eval "$file" > /dev/null 2>&1
	fi
done
note "local service done"
while :; do
	sleep 3600
done
"""
ETC_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/bash\n",
    "etc/group": "root:x:0:\ntty:x:5:\ndisk:x:6:\nkmem:x:9:\ncdrom:x:24:\naudio:x:29:\nvideo:x:44:\n"
                 "kvm:x:104:\ninput:x:105:\nrender:x:106:\nsgx:x:107:\n",
}


class FixtureMissing(Exception):
    """The cache lacks something .ci/zfs-guest-fixture makes."""


@dataclass(frozen=True)
class ZfsFixture:
    kernel: GuestKernel
    zfs_version: str          # upstream X.Y.Z of the module and the matching userland
    modules: Path             # zfs.ko and spl.ko built for kernel.release
    userland: Path            # zfsutils-linux + OpenZFS libraries of zfs_version, unpacked
    mismatch_userland: Path   # an older release's userland, unpacked
    boot_tools: Path          # udev and sysvinit, unpacked


def _complete(path: Path) -> bool:
    return (path / ".complete").is_file()


def find_zfs_fixture(cache_dir: Path = CACHE_DIR) -> ZfsFixture:
    """The fixture for the cached Debian kernel, or FixtureMissing naming what is absent."""
    kernel = find_guest_kernel(cache_dir)
    if kernel is None:
        raise FixtureMissing(f"no Debian kernel in {cache_dir}/kernel; {FIXTURE_HINT}")
    root = cache_dir / "zfs-guest"
    builds = sorted(p for p in (root / kernel.release).glob("zfs-*") if _complete(p))
    if not builds:
        raise FixtureMissing(f"no zfs.ko for {kernel.release} in {root}; {FIXTURE_HINT}")
    version = builds[-1].name.removeprefix("zfs-")
    userland = root / f"userland-{version}"
    others = sorted(p for p in root.glob("userland-*") if _complete(p) and p != userland)
    tools = sorted(p for p in root.glob("boot-tools-*") if _complete(p))
    if not (_complete(userland) and others and tools):
        raise FixtureMissing(f"{root}: userland {version}, an older userland or udev is missing; {FIXTURE_HINT}")
    return ZfsFixture(kernel, version, builds[-1], userland, others[0], tools[-1])


def livecd_commands(path: Path = COMMANDS_FILE) -> dict[str, str]:
    """command -> Gentoo package, from overlay/livecd-commands.txt."""
    pairs = (line.split("\t") for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    return {command: package for command, package in pairs}


def _resolve_in(root: Path, path: Path) -> Path:
    """`path` with symlinks followed inside `root` (an unpacked package tree), or on the host for root '/'."""
    for _ in range(40):
        if not path.is_symlink():
            return path
        target = Path(os.readlink(path))
        path = root / target.relative_to("/") if target.is_absolute() else path.parent / target
    raise OSError(f"{path}: too many levels of symbolic links")


def _find_command(name: str, roots) -> Path | None:
    for root in roots:
        dirs = HOST_PATH if root == Path("/") else [root / d for d in ROOT_PATH]
        for directory in dirs:
            candidate = directory / name
            if candidate.exists() or candidate.is_symlink():
                resolved = _resolve_in(root, candidate)
                if resolved.is_file():
                    return resolved
    return None


def _is_elf(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"\x7fELF"


class _Tree:
    """The guest's root directory being assembled on disk (merged /usr, as Gentoo's 23.0 profiles allow)."""

    def __init__(self, base: Path):
        self.base = base
        for directory in ("dev", "proc", "sys", "run", "tmp", "root", "etc/local.d", "usr/bin", "usr/lib64",
                          "usr/lib/x86_64-linux-gnu"):
            (base / directory).mkdir(parents=True, exist_ok=True)
        for link, target in (("bin", "usr/bin"), ("sbin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"),
                             ("usr/sbin", "bin")):
            (base / link).symlink_to(target)
        self.elves: list[Path] = []

    def copy(self, source: Path, inner: str, mode: int = 0o755) -> None:
        target = self.base / inner
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        target.chmod(mode)
        if mode & 0o111 and _is_elf(target):
            self.elves.append(target)

    def write(self, inner: str, text: str, mode: int = 0o644) -> None:
        target = self.base / inner
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    def copy_tree(self, source: Path, inner: str) -> None:
        for path in sorted(source.rglob("*")):
            if path.is_file() and not path.is_symlink():
                self.copy(path, f"{inner}/{path.relative_to(source)}", path.stat().st_mode & 0o777)


def _library_paths(elf: Path, roots) -> list[Path]:
    """Shared objects `elf` loads (ldd), looked up in the unpacked roots' library dirs first."""
    search = ":".join(str(root / d) for root in roots for d in LIB_DIRS)
    done = subprocess.run(["ldd", str(elf)], capture_output=True, text=True, env={"LD_LIBRARY_PATH": search})
    if done.returncode != 0:
        if "not a dynamic executable" in done.stdout + done.stderr:
            return []
        raise RuntimeError(f"ldd {elf}: {done.stderr.strip()}")
    paths = []
    for line in done.stdout.splitlines():
        if "not found" in line:
            raise FixtureMissing(f"{elf.name} needs {line.split()[0]}, found nowhere; {FIXTURE_HINT}")
        words = line.split()
        if "=>" in words and words[words.index("=>") + 1].startswith("/"):
            paths.append(Path(words[words.index("=>") + 1]))
        elif words and words[0].startswith("/"):
            paths.append(Path(words[0]))
    return paths


def _add_libraries(tree: _Tree, roots) -> None:
    seen: set[Path] = set()
    for elf in list(tree.elves):
        for library in _library_paths(elf, roots):
            if library in seen:
                continue
            seen.add(library)
            inner = str(library)
            for root in roots:
                if library.is_relative_to(root):
                    inner = "/" + str(library.relative_to(root))
            tree.copy(library.resolve(), inner.lstrip("/"), 0o755)


def _add_modules(tree: _Tree, kernel: GuestKernel, zfs_modules: Path | None) -> None:
    inner = f"lib/modules/{kernel.release}"
    for ko in module_load_order(kernel.modules, DISK_MODULES):
        tree.copy(ko, f"{inner}/{ko.relative_to(kernel.modules)}", 0o644)
    for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        tree.copy(kernel.modules / name, f"{inner}/{name}", 0o644)
    if zfs_modules is not None:
        for ko in ("spl.ko", "zfs.ko"):
            tree.copy(zfs_modules / ko, f"{inner}/updates/dkms/{ko}", 0o644)
    subprocess.run(["depmod", "-b", str(tree.base), kernel.release], check=True)


def build_guest_root(base: Path, fixture: ZfsFixture, *, userland: Path, with_module: bool = True,
                     selftest_script: Path = SELFTEST_SCRIPT) -> Path:
    """Assemble the guest's root in `base` (must not exist)."""
    tree = _Tree(base)
    roots = [userland, fixture.boot_tools, Path("/")]
    for name in sorted(set(livecd_commands()) - NOT_ON_PATH - {"sh"}):
        source = _find_command(name, roots)
        if source is not None:
            tree.copy(source, f"usr/bin/{name}")
    (base / "usr/bin/sh").symlink_to("bash")
    tree.copy(_resolve_in(fixture.boot_tools, fixture.boot_tools / UDEVD), UDEVD)
    tree.copy_tree(fixture.boot_tools / "lib/udev", "lib/udev")
    tree.copy_tree(userland / "lib/udev", "lib/udev")
    tree.copy_tree(userland / "usr/share/zfs/compatibility.d", "usr/share/zfs/compatibility.d")
    _add_libraries(tree, [userland, fixture.boot_tools])
    _add_modules(tree, fixture.kernel, fixture.modules if with_module else None)
    for inner, text in ETC_FILES.items():
        tree.write(inner, text)
    tree.write("init", INIT, 0o755)
    tree.copy(selftest_script, "etc/local.d/zfs-selftest.start", 0o755)
    return base


def pack_initramfs(root: Path, dest: Path) -> Path:
    """gzip'd newc cpio of the directory tree `root` (symlinks kept as symlinks)."""
    entries = []
    for path in sorted(root.rglob("*")):
        inner = str(path.relative_to(root))
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            entries.append((inner, stat.S_IFLNK | 0o777, os.readlink(path).encode(), (0, 0)))
        elif stat.S_ISDIR(info.st_mode):
            entries.append((inner, stat.S_IFDIR | 0o755, b"", (0, 0)))
        else:
            entries.append((inner, stat.S_IFREG | (info.st_mode & 0o777), path.read_bytes(), (0, 0)))
    entries.append(("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)))
    dest.write_bytes(gzip.compress(newc_archive(entries), compresslevel=1))
    return dest


def build_grub_iso(dest: Path, staging: Path, *, vmlinuz: Path, initramfs: Path, volid: str, bootargs: str,
                   grub_timeout: int = 1) -> Path:
    """An ISO as Catalyst's grub-mkrescue makes it: BIOS and EFI GRUB, Catalyst's grub.cfg shape."""
    boot = staging / "boot"
    (boot / "grub").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(vmlinuz, boot / "gentoo")
    shutil.copyfile(initramfs, boot / "gentoo.igz")
    cfg = catalyst_grub_cfg(volid, bootargs, "/boot/gentoo", "/boot/gentoo.igz")
    (boot / "grub/grub.cfg").write_text(cfg.replace("set timeout=10", f"set timeout={grub_timeout}"))
    subprocess.run(["grub-mkrescue", "-o", str(dest), str(staging), "--", "-volid", volid],
                   check=True, stdin=subprocess.DEVNULL, capture_output=True)
    return dest
