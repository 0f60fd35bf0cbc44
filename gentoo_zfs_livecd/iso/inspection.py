"""Check a built install ISO without booting it, and collect the facts for build-info.json.

The ISO is read with pycdlib (Rock Ridge names, else Joliet). The live root is read in
place with unsquashfs at the byte offset of `/image.squashfs` inside the ISO, so nothing
is copied out. Every failed check raises one UserError line naming what is missing and
what was found instead.
"""
import dataclasses
import gzip
import lzma
import re
import struct
import subprocess
from pathlib import Path

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.iso.grubcfg import GRUB_CFG, first_entry

SECTOR = 2048
MODULE_SUFFIXES = ("", ".xz", ".zst", ".gz")
TOOLS = ("zpool", "zfs")
TOOL_DIRS = ("usr/bin", "usr/sbin", "bin", "sbin")
LISTING = re.compile(
    r"^(?P<mode>\S{10})\s+\S+\s+(?P<size>\d+|\d+,\s*\d+)\s+\d{4}-\d\d-\d\d \d\d:\d\d "
    r"squashfs-root(?P<path>/.*)?$")


@dataclasses.dataclass
class IsoFacts:
    iso: str
    volume_id: str
    size: int
    kernel: str
    initramfs: str
    kernel_release: str
    boot: list
    zfs_module: str
    zfs_module_version: str
    zfs_tools_package: str
    zfs_version: str
    checked: list

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def verify_iso(iso_path, expected_volid: str) -> IsoFacts:
    """Check the ISO at `iso_path` (see module docstring); raise UserError on the first failure."""
    import pycdlib
    from pycdlib.pycdlibexception import PyCdlibException

    iso_path = Path(iso_path)
    iso = pycdlib.PyCdlib()
    try:
        iso.open(str(iso_path))
    except (OSError, PyCdlibException) as error:
        raise UserError(f"{iso_path}: not a readable ISO 9660 image ({error}); rebuild it") from None
    try:
        return _verify(iso, iso_path, expected_volid)
    finally:
        iso.close()


def _verify(iso, iso_path, expected_volid):
    def fail(problem, hint):
        raise UserError(f"{iso_path}: {problem}; {hint}")

    checked = []
    names = IsoNames(iso)
    volid = check_volume_id(iso, expected_volid, fail, checked)
    kernel, initrd = check_boot_files(iso, iso_path, names, fail, checked)
    try:
        release = kernel_release(names.read(kernel, 65536))
    except ValueError as error:
        fail(f"{kernel} is not a bzImage ({error})", "check boot/kernel in the livecd-stage2 spec")
    checked.append(f"kernel release {release}")

    offset, _length = names.extent("/image.squashfs")
    root = LiveRoot(iso_path, offset)
    tree = check_module_tree(root, release, fail, checked)
    module, module_version = check_zfs_module(root, tree, release, fail, checked)
    package = check_user_tools(root, module, module_version, fail, checked)
    return IsoFacts(iso=str(iso_path), volume_id=volid, size=iso_path.stat().st_size,
                    kernel=kernel, initramfs=initrd, kernel_release=release,
                    boot=sorted(boot_support(iso, names)), zfs_module="/" + module,
                    zfs_module_version=module_version, zfs_tools_package=package,
                    zfs_version=base_version(module_version), checked=checked)


def check_volume_id(iso, expected_volid, fail, checked) -> str:
    volid = volume_id(iso)
    if volid != expected_volid:
        fail(f"volume id is {volid!r}, expected {expected_volid!r}",
             "set livecd/volid to the expected value (root=live:CDLABEL= must match it)")
    checked.append(f"volume id {volid}")
    return volid


def check_boot_files(iso, iso_path, names, fail, checked):
    """(kernel, initramfs) paths after checking they, the squashfs and BIOS/EFI boot files exist."""
    grub_cfg = names.read(GRUB_CFG)
    if grub_cfg is None:
        fail(f"ISO has no {GRUB_CFG}", "check the catalyst build log for the ISO step (grub-mkrescue)")
    entry = first_entry(grub_cfg.decode(errors="replace"), f"{iso_path}:{GRUB_CFG}")
    kernel, initrd = entry.kernel, entry.initrd
    for what, path in (("kernel", kernel), ("initramfs", initrd), ("live root", "/image.squashfs")):
        if not names.exists(path):
            fail(f"ISO has no {what} {path} (top level has: {', '.join(names.listdir('/'))})",
                 "check the catalyst build log for the kernel/initramfs/squashfs step")
        checked.append(f"{what} {path}")
    boot = boot_support(iso, names)
    for firmware, files in (("bios", "/boot/grub/i386-pc/eltorito.img or an El Torito BIOS entry"),
                            ("efi", "/efi.img, /efi/boot/bootx64.efi or an El Torito EFI entry")):
        if firmware not in boot:
            fail(f"ISO has no {firmware.upper()} boot file ({files}; found boot support for: "
                 f"{', '.join(boot) or 'nothing'})",
                 "install GRUB for i386-pc and x86_64-efi on the build host (GRUB_PLATFORMS=\"pc efi-64\")")
        checked.append(f"{firmware} boot ({boot[firmware]})")
    return kernel, initrd


def check_module_tree(root, release, fail, checked) -> str:
    """The real path of lib/modules/<release>, after checking it is the only module tree."""
    modules_dir = root.resolve("lib/modules")
    found = sorted(name for name in root.listdir(modules_dir)
                   if root.entries[f"{modules_dir}/{name}"][0] == "d") if modules_dir else []
    if release not in found:
        fail(f"ISO has no zfs module for {release} (modules found for: {', '.join(found) or 'none'})",
             "build sys-fs/zfs against the kernel that is on the ISO")
    if len(found) > 1:
        fail(f"image.squashfs has modules for {len(found)} kernels ({', '.join(found)}), "
             f"expected only {release}", "remove the stale kernel's modules (livecd/rm or a clean stage)")
    checked.append(f"lib/modules/{release} is the only module tree")
    return f"{modules_dir}/{release}"


def check_zfs_module(root, tree, release, fail, checked):
    """(path, .modinfo version) of zfs.ko, after checking its vermagic names `release`."""
    module = find_module(root, tree, "zfs")
    if module is None:
        present = ", ".join(sorted(root.walk_files(tree))) or "nothing"
        fail(f"ISO has no zfs module for {release} (lib/modules/{release} has: {present})",
             "add sys-fs/zfs to boot/kernel/gentoo/packages")
    info = modinfo(decompress_module(module, root.cat(module)))
    magic = (info.get("vermagic") or [""])[0].split()
    if not magic or magic[0] != release:
        fail(f"/{module} was built for {magic[0] if magic else 'no kernel (no vermagic)'}, "
             f"expected {release}", "rebuild sys-fs/zfs against the ISO's kernel (--usepkg n)")
    checked.append(f"/{module} vermagic {release}")
    version = (info.get("version") or [""])[0]
    if not version:
        fail(f"/{module} has no version in .modinfo", "rebuild sys-fs/zfs")
    return module, version


def check_user_tools(root, module, module_version, fail, checked) -> str:
    """The vdb package of the ZFS tools, after checking zpool/zfs exist and match the module."""
    for tool in TOOLS:
        if not any(root.resolve(f"{d}/{tool}") for d in TOOL_DIRS):
            fail(f"live root has no ZFS user tool {tool} (looked in {', '.join(TOOL_DIRS)})",
                 "add sys-fs/zfs to livecd/packages")
        checked.append(f"user tool {tool}")
    package, pvr = zfs_package(root)
    if package is None:
        fail("live root has no sys-fs/zfs or sys-fs/zfs-kmod in /var/db/pkg",
             "keep /var/db/pkg on the ISO (do not list it in livecd/rm or livecd/empty)")
    if base_version(pvr) != base_version(module_version):
        fail(f"ZFS user tools are {package} but /{module} is version {module_version}",
             "build the module and the tools from the same ZFS version")
    checked.append(f"{package} matches module {module_version}")
    return package


# --- ISO 9660 side -------------------------------------------------------------------------

class IsoNames:
    """Paths of an open pycdlib ISO by their Rock Ridge (else Joliet) names."""

    def __init__(self, iso):
        self.iso = iso
        if iso.has_rock_ridge():
            self.key = "rr_path"
        elif iso.has_joliet():
            self.key = "joliet_path"
        else:
            raise UserError("ISO has neither Rock Ridge nor Joliet names; build it with "
                            "grub-mkrescue (xorriso -r) as catalyst does")

    def record(self, path):
        from pycdlib.pycdlibexception import PyCdlibException
        try:
            return self.iso.get_record(**{self.key: path})
        except PyCdlibException:
            return None

    def exists(self, path) -> bool:
        record = self.record(path)
        return record is not None and not record.is_dir()

    def read(self, path, limit=None):
        """File content (at most `limit` bytes), or None when there is no such file."""
        if not self.exists(path):
            return None
        with self.iso.open_file_from_iso(**{self.key: path}) as stream:
            return stream.read() if limit is None else stream.read(limit)

    def listdir(self, path):
        record = self.record(path)
        if record is None or not record.is_dir():
            return []
        names = []
        for child in self.iso.list_children(**{self.key: path}):
            if child is None or child.is_dot() or child.is_dotdot():
                continue
            names.append(self.iso.full_path_from_dirrecord(child, rockridge=self.key == "rr_path")
                         .rsplit("/", 1)[-1])
        return sorted(names)

    def extent(self, path):
        """(byte offset, length) of a file's data inside the ISO."""
        record = self.record(path)
        return record.extent_location() * SECTOR, record.get_data_length()


def volume_id(iso) -> str:
    """The primary volume descriptor's volume id (what CDLABEL= matches)."""
    return iso.pvd.volume_identifier.decode("ascii", errors="replace").rstrip(" \0")


def boot_support(iso, names) -> dict:
    """{"bios"|"efi": how} for the boot files and El Torito entries found."""
    found = {}
    platforms = eltorito_platforms(iso)
    if 0 in platforms:
        found["bios"] = "El Torito BIOS entry"
    elif names.exists("/boot/grub/i386-pc/eltorito.img"):
        found["bios"] = "/boot/grub/i386-pc/eltorito.img"
    if 0xEF in platforms:
        found["efi"] = "El Torito EFI entry"
    else:
        for path in ("/efi.img", "/efi/boot/bootx64.efi"):
            if names.exists(path):
                found["efi"] = path
                break
    return found


def eltorito_platforms(iso) -> set:
    """Platform ids of the El Torito boot catalog (0 = x86 BIOS, 0xEF = EFI)."""
    catalog = getattr(iso, "eltorito_boot_catalog", None)
    if catalog is None:
        return set()
    platforms = {catalog.validation_entry.platform_id}
    platforms.update(section.platform_id for section in catalog.sections if section.section_entries)
    return platforms


def kernel_release(bzimage: bytes) -> str:
    """Release string from a bzImage's setup header (boot.rst: kernel_version at 0x20E).

    Raises ValueError when the header is not there.
    """
    if len(bzimage) < 0x210:
        raise ValueError(f"only {len(bzimage)} bytes, too short for a setup header")
    if bzimage[0x202:0x206] != b"HdrS":
        raise ValueError("no 'HdrS' setup header magic at 0x202")
    pointer = struct.unpack_from("<H", bzimage, 0x20E)[0]
    if pointer == 0:
        raise ValueError("kernel_version pointer at 0x20E is 0")
    start = pointer + 0x200
    end = bzimage.find(b"\0", start)
    if start >= len(bzimage) or end < 0:
        raise ValueError(f"kernel_version string at 0x{start:x} is outside the header")
    text = bzimage[start:end].decode("ascii", errors="replace").split()
    if not text:
        raise ValueError(f"kernel_version string at 0x{start:x} is empty")
    return text[0]


# --- live root side ------------------------------------------------------------------------

class LiveRoot:
    """The squashfs live root, listed once; paths are relative, without a leading slash."""

    def __init__(self, image, offset=0):
        self.image = str(image)
        self.offset = str(offset)
        self.entries = {}
        self.children = {}
        for line in self._unsquashfs("-lln").splitlines():
            entry = parse_listing_line(line)
            if entry is None:
                continue
            path, kind, target = entry
            self.entries[path] = (kind, target)
            if path:
                parent = path.rpartition("/")[0]
                self.children.setdefault(parent, []).append(path.rpartition("/")[2])

    def _unsquashfs(self, option, paths=(), text=True):
        argv = ["unsquashfs", "-n", "-o", self.offset, option, self.image, *paths]
        try:
            done = subprocess.run(argv, capture_output=True, check=True)
        except FileNotFoundError:
            raise UserError("unsquashfs not found; install squashfs-tools") from None
        except subprocess.CalledProcessError as error:
            last = (error.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
            what = f"/{paths[0]} in image.squashfs" if paths else "image.squashfs"
            raise UserError(f"{self.image}: unsquashfs cannot read {what} ({last}); "
                            "rebuild the ISO") from None
        return done.stdout.decode(errors="replace") if text else done.stdout

    def resolve(self, path, hops=40):
        """Real path of `path` with every symlink followed (merged-usr), or None."""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        real = []
        while parts:
            part = parts.pop(0)
            if part == "..":
                real = real[:-1]
                continue
            candidate = "/".join(real + [part])
            entry = self.entries.get(candidate)
            if entry is None:
                return None
            kind, target = entry
            if kind == "l":
                hops -= 1
                if hops < 0:
                    return None
                if target.startswith("/"):
                    real = []
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                continue
            real.append(part)
        return "/".join(real)

    def listdir(self, real_dir):
        return list(self.children.get(real_dir, []))

    def walk_files(self, real_dir):
        """Paths of the regular files below `real_dir`, relative to it."""
        prefix = real_dir + "/"
        return [p[len(prefix):] for p, (kind, _t) in self.entries.items()
                if p.startswith(prefix) and kind == "-"]

    def cat(self, real_path) -> bytes:
        return self._unsquashfs("-cat", [real_path], text=False)


def parse_listing_line(line):
    """(path, kind, symlink target) from one `unsquashfs -lln` line, or None."""
    match = LISTING.match(line)
    if match is None:
        return None
    path = (match.group("path") or "/")[1:]
    kind = match.group("mode")[0]
    target = None
    if kind == "l" and " -> " in path:
        path, target = path.split(" -> ", 1)
    return path, kind, target


def find_module(root, real_dir, name):
    """Path of `<name>.ko[.xz|.zst|.gz]` under a module tree, preferring extra/ (where ZFS installs)."""
    for suffix in MODULE_SUFFIXES:
        path = f"{real_dir}/extra/{name}.ko{suffix}"
        if root.entries.get(path, ("", None))[0] == "-":
            return path
    wanted = {f"{name}.ko{suffix}" for suffix in MODULE_SUFFIXES}
    for relative in sorted(root.walk_files(real_dir)):
        if relative.rsplit("/", 1)[-1] in wanted:
            return f"{real_dir}/{relative}"
    return None


def decompress_module(path: str, data: bytes) -> bytes:
    """The ELF bytes of a module file, by its suffix."""
    try:
        if path.endswith(".xz"):
            return lzma.decompress(data)
        if path.endswith(".zst"):
            import zstandard
            return zstandard.ZstdDecompressor().decompressobj().decompress(data)
        if path.endswith(".gz"):
            return gzip.decompress(data)
    except (lzma.LZMAError, OSError, EOFError, ValueError) as error:
        raise UserError(f"/{path}: cannot decompress the module ({error}); rebuild sys-fs/zfs") from None
    except Exception as error:  # zstandard.ZstdError has no common base with the others
        raise UserError(f"/{path}: cannot decompress the module ({error}); rebuild sys-fs/zfs") from None
    return data


def modinfo(elf: bytes) -> dict:
    """{key: [values]} from the `.modinfo` section of an ELF64 kernel module.

    Raises UserError when `elf` is not an ELF64 file or has no `.modinfo`.
    """
    if elf[:4] != b"\x7fELF" or len(elf) < 64:
        raise UserError("kernel module is not an ELF file; rebuild sys-fs/zfs")
    if elf[4] != 2:
        raise UserError("kernel module is not ELF64; build sys-fs/zfs for amd64")
    order = "<" if elf[5] == 1 else ">"
    shoff, = struct.unpack_from(order + "Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from(order + "HHH", elf, 0x3A)

    def section(index):
        name, _kind, _flags, _addr, offset, size, link = struct.unpack_from(
            order + "IIQQQQI", elf, shoff + index * shentsize)
        return name, offset, size, link

    if shoff == 0 or shoff + shentsize > len(elf):
        raise UserError("kernel module has no section header table; rebuild sys-fs/zfs")
    _n, _o, first_size, first_link = section(0)
    # ELF extended numbering: the real counts live in section 0 when they do not fit.
    if shnum == 0:
        shnum = first_size
    if shstrndx == 0xFFFF:
        shstrndx = first_link
    if shoff + shnum * shentsize > len(elf):
        raise UserError("kernel module's section header table is truncated; rebuild sys-fs/zfs")
    _n, names_at, names_size, _l = section(shstrndx)
    names = elf[names_at:names_at + names_size]
    for index in range(shnum):
        name, offset, size, _link = section(index)
        if names[name:names.find(b"\0", name)] == b".modinfo":
            return parse_modinfo(elf[offset:offset + size])
    raise UserError("kernel module has no .modinfo section; rebuild sys-fs/zfs")


def parse_modinfo(section: bytes) -> dict:
    fields = {}
    for item in section.split(b"\0"):
        key, sep, value = item.decode(errors="replace").partition("=")
        if sep:
            fields.setdefault(key, []).append(value)
    return fields


def zfs_package(root):
    """("sys-fs/zfs-<PVR>", PVR) from the vdb; sys-fs/zfs-kmod on trees that split the module out."""
    vdb = root.resolve("var/db/pkg/sys-fs")
    names = root.listdir(vdb) if vdb else []
    for package in ("zfs", "zfs-kmod"):
        pattern = re.compile(rf"^{re.escape(package)}-(\d[^/]*)$")
        versions = sorted(m.group(1) for m in map(pattern.match, names) if m)
        if versions:
            return f"sys-fs/{package}-{versions[-1]}", versions[-1]
    return None, None


def base_version(version: str) -> str:
    """A ZFS version without Gentoo's revision: `2.3.4-r0-gentoo`, `2.3.4-r1` -> `2.3.4`."""
    return re.sub(r"(-r\d+)?(-gentoo)?$", "", version)
