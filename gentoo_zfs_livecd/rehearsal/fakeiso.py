"""Small but real install ISOs laid out like Catalyst 4.1's amd64 dist-kernel + ZFS ISO.

Used by the tests and by the Catalyst rehearsal mode: a few hundred KiB of ISO 9660
(Rock Ridge + Joliet) with a bzImage setup header, a grub.cfg from Catalyst's template,
BIOS/EFI boot files and El Torito entries, and an `image.squashfs` live root with
merged-usr symlinks, ELF64 `zfs.ko`/`spl.ko` carrying a real `.modinfo` section, ZFS user
tools and a vdb entry. Every parameter can be bent to make one thing wrong, so that
`gentoo_zfs_livecd.iso.inspection` has something to find.

It does not boot: the kernel is a setup header with filler behind it, and eltorito.img,
efi.img and bootx64.efi are filler bytes at the paths and El Torito entries GRUB uses.
File contents and layout depend only on the arguments; the ISO's own timestamps are the
build time (pycdlib stamps them), like a real build.
"""
import gzip
import io
import lzma
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from gentoo_zfs_livecd import atomic
from gentoo_zfs_livecd.catalyst.grammar import CATALYST_VOLID_MAX
from gentoo_zfs_livecd.errors import UserError

# The squashfs carries one fixed time so that it is the same bytes on every build.
SQUASHFS_TIME = "1700000000"
BUILDER = "builder@host"
KERNEL_SETUP_SECTS = 4

GRUB_ENTRY = """menuentry 'Boot LiveCD (kernel: gentoo){suffix}' --class gnu-linux --class os {{
\tsearch --no-floppy --set=root -l {volid}
\tlinux /boot/gentoo {args}root=live:CDLABEL={volid} rd.live.dir=/ rd.live.squashimg=image.squashfs cdroot{extra}
\tinitrd /boot/gentoo.igz
}}
"""


def build_iso(dest, volid, kernel_release="6.12.41-gentoo-dist", zfs_version="2.3.4-r0-gentoo",
              tools_version=None, module_releases=None, zfs_module=True, vermagic_release=None,
              module_compression=None, vdb_package="sys-fs/zfs", bios=True, efi=True,
              boot_args="dokeymap nodhcp", work_dir=None, writer="pycdlib", packages=None) -> Path:
    """Write an ISO to `dest` (atomically) and return its path.

    kernel_release: the release in the bzImage header. zfs_version: the module's
    `.modinfo` version (`2.3.4-r0-gentoo`). tools_version: PVR of the vdb entry of the user
    tools (default: derived from zfs_version, `2.3.4`). module_releases: the
    `lib/modules/<release>` directories (default: [kernel_release]); each holds spl.ko and,
    unless zfs_module is false, zfs.ko. vermagic_release: release written into the modules'
    vermagic (default: the directory's release). module_compression: None, "xz", "zst" or
    "gz". vdb_package: category/name of the vdb entry. bios / efi: whether the boot files
    and El Torito entries for that firmware exist. writer: "pycdlib" (default, in-process)
    or "xorriso" (`xorriso -as mkisofs`, the tool grub-mkrescue drives).
    packages: more var/db/pkg entries of the live root, {`cat/PF`: eclasses it inherited}.
    work_dir: where the live root and ISO tree are staged (kept); default a temporary dir.
    """
    # Catalyst refuses only a long volume id; one with spaces builds (and then fails to boot).
    if len(volid) > CATALYST_VOLID_MAX:
        raise UserError(f"volume id {volid!r} has more than {CATALYST_VOLID_MAX} characters; "
                        "ISO volume ID must not exceed 32 characters, shorten livecd/volid")
    releases = list(module_releases) if module_releases is not None else [kernel_release]
    if tools_version is None:
        tools_version = pvr_from_module_version(zfs_version)
    if writer not in ("pycdlib", "xorriso"):
        raise ValueError(f"unknown ISO writer {writer!r}")
    dest = Path(dest)
    scratch = tempfile.TemporaryDirectory(prefix="fakeiso-") if work_dir is None else None
    work = Path(scratch.name if scratch else work_dir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        for leftover in ("live-root", "iso-root"):
            shutil.rmtree(work / leftover, ignore_errors=True)
        live = work / "live-root"
        write_live_root(live, releases, zfs_version, tools_version, zfs_module, vermagic_release,
                        module_compression, vdb_package)
        write_vdb(live, packages or {})
        squashfs = work / "image.squashfs"
        make_squashfs(live, squashfs)
        tree = iso_tree(volid, kernel_release, boot_args, bios, efi)
        if writer == "pycdlib":
            write_with_pycdlib(dest, volid, tree, squashfs, bios, efi)
        else:
            write_with_xorriso(dest, volid, tree, squashfs, bios, efi, work / "iso-root")
    finally:
        if scratch:
            scratch.cleanup()
    return dest


def pvr_from_module_version(version: str) -> str:
    """Gentoo PVR for a module version: `2.3.4-r0-gentoo` -> `2.3.4`, `2.3.4-r1-gentoo` -> `2.3.4-r1`."""
    pvr = version.removesuffix("-gentoo")
    return pvr.removesuffix("-r0")


def module_version_from_pvr(pvr: str) -> str:
    """The ZFS_META_ALIAS version the ebuild builds: `2.3.4` -> `2.3.4-r0-gentoo`."""
    return f"{pvr}-gentoo" if "-r" in pvr else f"{pvr}-r0-gentoo"


# --- kernel and initramfs -------------------------------------------------------------

def bzimage(release: str, payload_size: int = 4096) -> bytes:
    """A bzImage-shaped file: EFI stub `MZ`, a boot-protocol 2.15 setup header whose
    kernel_version pointer names `release`, and a filler payload."""
    setup_size = (KERNEL_SETUP_SECTS + 1) * 512
    image = bytearray(setup_size + payload_size)
    image[0:2] = b"MZ"
    image[0x1F1] = KERNEL_SETUP_SECTS
    struct.pack_into("<H", image, 0x1FE, 0xAA55)
    image[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", image, 0x206, 0x020F)
    version = f"{release} ({BUILDER}) #1 SMP PREEMPT_DYNAMIC Thu Jan  1 00:00:00 UTC 2026".encode()
    string_at = 0x400
    image[string_at:string_at + len(version) + 1] = version + b"\0"
    struct.pack_into("<H", image, 0x20E, string_at - 0x200)
    for offset in range(setup_size, len(image)):
        image[offset] = offset * 7 % 251
    return bytes(image)


def initramfs() -> bytes:
    """A gzip'd newc cpio holding `/init`, as dracut's output is a (compressed) cpio."""
    members = [("init", 0o100755, b"#!/bin/sh\nexec /sbin/init\n")]
    archive = bytearray()
    for ino, (name, mode, data) in enumerate(members + [("TRAILER!!!", 0, b"")], start=1):
        encoded = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0]
        archive += b"070701" + "".join(f"{v:08X}" for v in fields).encode() + encoded
        archive += b"\0" * (-len(archive) % 4) + data
        archive += b"\0" * (-len(archive) % 4)
    return gzip.compress(bytes(archive), mtime=0)


def grub_cfg(volid: str, boot_args: str) -> str:
    """Catalyst 4.1.1's grub.cfg for a kernel named `gentoo` (iso-bootloader-setup.sh)."""
    args = f"{boot_args} " if boot_args else ""
    head = "set default=0\nset gfxpayload=keep\nset timeout=10\ninsmod all_video\n\n"
    return (head + GRUB_ENTRY.format(suffix="", volid=volid, args=args, extra="") + "\n"
            + GRUB_ENTRY.format(suffix=" (cached)", volid=volid, args=args, extra=" rd.live.ram=1"))


# --- kernel modules --------------------------------------------------------------------

def module_elf(modinfo_fields) -> bytes:
    """An ELF64 x86-64 relocatable object with `.text`, `.modinfo` and `.shstrtab`.

    modinfo_fields: (key, value) pairs, stored as NUL-terminated `key=value` strings.
    """
    text = b"\x55\x48\x89\xe5\x31\xc0\x5d\xc3"  # push rbp; mov rbp,rsp; xor eax,eax; pop rbp; ret
    modinfo = b"".join(f"{k}={v}".encode() + b"\0" for k, v in modinfo_fields)
    names = [b"", b".text", b".modinfo", b".shstrtab"]
    shstrtab = b"\0".join(names) + b"\0"
    name_offsets = [sum(len(n) + 1 for n in names[:i]) for i in range(len(names))]

    body = bytearray(64)
    text_at = len(body)
    body += text
    modinfo_at = len(body)
    body += modinfo
    shstrtab_at = len(body)
    body += shstrtab
    body += b"\0" * (-len(body) % 8)
    shoff = len(body)

    def section(name, kind, flags, offset, size, align):
        return struct.pack("<IIQQQQIIQQ", name, kind, flags, 0, offset, size, 0, 0, align, 0)

    sht_progbits, sht_strtab, shf_alloc, shf_exec = 1, 3, 0x2, 0x4
    body += bytes(64)
    body += section(name_offsets[1], sht_progbits, shf_alloc | shf_exec, text_at, len(text), 16)
    body += section(name_offsets[2], sht_progbits, shf_alloc, modinfo_at, len(modinfo), 8)
    body += section(name_offsets[3], sht_strtab, 0, shstrtab_at, len(shstrtab), 1)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # ELF64, little-endian, SysV
    header = ident + struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 4, 3)
    body[0:64] = header
    return bytes(body)


def zfs_modinfo(version: str, vermagic_release: str):
    return [("version", version), ("license", "Dual MIT/GPL"), ("license", "Dual BSD/GPL"),
            ("license", "CDDL"), ("author", "OpenZFS"), ("description", "ZFS"),
            ("depends", "spl"), ("retpoline", "Y"), ("name", "zfs"),
            ("vermagic", vermagic(vermagic_release))]


def spl_modinfo(version: str, vermagic_release: str):
    return [("version", version), ("license", "GPL"), ("author", "OpenZFS"),
            ("description", "Solaris Porting Layer"), ("depends", ""), ("retpoline", "Y"),
            ("name", "spl"), ("vermagic", vermagic(vermagic_release))]


def vermagic(release: str) -> str:
    """include/linux/vermagic.h for an x86-64 PREEMPT_DYNAMIC config without MODVERSIONS."""
    return f"{release} SMP preempt mod_unload "


def compress_module(data: bytes, compression):
    """(suffix, bytes) as linux-mod-r1 installs a module with USE=modules-compress."""
    if compression is None:
        return "", data
    if compression == "xz":
        return ".xz", lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    if compression == "zst":
        import zstandard
        return ".zst", zstandard.ZstdCompressor().compress(data)
    if compression == "gz":
        return ".gz", gzip.compress(data, mtime=0)
    raise ValueError(f"unknown module compression {compression!r}")


# --- live root ---------------------------------------------------------------------------

def write_live_root(root: Path, releases, zfs_version, tools_version, zfs_module,
                    vermagic_release, module_compression, vdb_package) -> None:
    """A merged-usr Gentoo live root with ZFS, as catalyst leaves it before gensquashfs."""
    root.mkdir(parents=True)
    for directory in ("usr/bin", "usr/lib", "usr/lib64", "etc", "var/db/pkg", "root", "dev",
                      "proc", "sys", "run", "tmp"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    for link, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"),
                         ("lib64", "usr/lib64"), ("usr/sbin", "bin")):
        os.symlink(target, root / link)
    _write(root / "etc/fstab", "tmpfs / tmpfs defaults 0 0\n")
    _write(root / "etc/hostname", "livecd\n")
    _write(root / "etc/hosts", "127.0.0.1 livecd.gentoo livecd localhost\n")

    alias = f"zfs-{module_version_from_pvr(tools_version)}"
    tools = ("zpool", "zfs", "zdb", "mount.zfs")
    for tool in tools:
        _write(root / "usr/bin" / tool, f"#!/bin/sh\necho {alias}\n", 0o755)
    _write(root / "usr/lib64/libzfs.so.6.0.0", b"\x7fELF" + bytes(60) + alias.encode() + b"\0")
    os.symlink("libzfs.so.6.0.0", root / "usr/lib64/libzfs.so.6")

    for release in releases:
        write_modules(root / "usr/lib/modules" / release, zfs_version,
                      vermagic_release or release, zfs_module, module_compression)

    category, name = vdb_package.split("/", 1)
    vdb = root / "var/db/pkg" / category / f"{name}-{tools_version}"
    _write(vdb / "PF", f"{name}-{tools_version}\n")
    _write(vdb / "CATEGORY", f"{category}\n")
    _write(vdb / "SLOT", "0/6\n")
    _write(vdb / "repository", "gentoo\n")
    _write(vdb / "CONTENTS", "".join(f"obj /usr/bin/{tool} 0 1700000000\n" for tool in tools))


def write_vdb(root: Path, packages: dict) -> None:
    """Portage's entries of installed packages: PF, CATEGORY and, for a package whose ebuild
    inherited eclasses, INHERITED (space separated, as Portage writes it)."""
    for cpv, eclasses in packages.items():
        category, pf = cpv.split("/")
        entry = root / "var/db/pkg" / category / pf
        _write(entry / "PF", f"{pf}\n")
        _write(entry / "CATEGORY", f"{category}\n")
        if eclasses:
            _write(entry / "INHERITED", f"{' '.join(eclasses)}\n")


def write_modules(directory: Path, zfs_version, vermagic_release, zfs_module, compression):
    extra = directory / "extra"
    modules = [("spl", spl_modinfo(zfs_version, vermagic_release))]
    if zfs_module:
        modules.append(("zfs", zfs_modinfo(zfs_version, vermagic_release)))
    dep_lines = []
    for name, fields in modules:
        suffix, data = compress_module(module_elf(fields), compression)
        _write(extra / f"{name}.ko{suffix}", data)
        depends = " extra/spl.ko" + suffix if name == "zfs" else ""
        dep_lines.append(f"extra/{name}.ko{suffix}:{depends}\n")
    _write(directory / "modules.dep", "".join(reversed(dep_lines)))
    _write(directory / "modules.order", "")


def make_squashfs(root: Path, image: Path) -> None:
    """`image` from `root`, with fixed ownership and times (catalyst uses xz by default)."""
    argv = ["mksquashfs", str(root), str(image), "-noappend", "-quiet", "-no-progress",
            "-comp", "xz", "-all-root", "-no-xattrs", "-mkfs-time", SQUASHFS_TIME,
            "-all-time", SQUASHFS_TIME]
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise UserError("mksquashfs not found; install squashfs-tools") from None
    except subprocess.CalledProcessError as error:
        raise UserError(f"mksquashfs failed for {image}: {error.stderr.strip()}") from None


# --- ISO tree ----------------------------------------------------------------------------

def iso_tree(volid, kernel_release, boot_args, bios, efi) -> dict:
    """{ISO path: bytes} for everything except image.squashfs."""
    tree = {
        "boot/gentoo": bzimage(kernel_release),
        "boot/gentoo.igz": initramfs(),
        "boot/grub/grub.cfg": grub_cfg(volid, boot_args).encode(),
        "livecd": b"",
        "README.txt": b"Gentoo Linux installation media with ZFS.\n",
        ".disk/2026-01-01-00-00-00-00.uuid": b"",
    }
    if bios:
        tree["boot/grub/i386-pc/eltorito.img"] = boot_image(b"GRUB i386-pc eltorito", 2048)
        tree["boot/grub/i386-pc/normal.mod"] = boot_image(b"\x7fELF i386-pc normal.mod", 512)
    if efi:
        bootx64 = boot_image(b"MZ GRUB x86_64-efi", 4096)
        tree["efi.img"] = boot_image(b"EFI system partition image", 32768)
        tree["efi/boot/bootx64.efi"] = bootx64
        tree["boot/grub/x86_64-efi/normal.mod"] = boot_image(b"\x7fELF x86_64-efi normal.mod", 512)
    return tree


def boot_image(tag: bytes, size: int) -> bytes:
    """Deterministic filler of `size` bytes starting with `tag`."""
    return (tag + bytes(range(256)) * (size // 256 + 1))[:size]


def iso9660_name(path: str, is_dir: bool) -> str:
    """ISO 9660 level-3 path for a Rock Ridge path (`boot/grub/i386-pc` -> `/BOOT/GRUB/I386_PC`)."""
    parts = []
    for part in path.split("/"):
        stem, dot, ext = part.rpartition(".") if "." in part.lstrip(".") else (part, "", "")
        clean = lambda s: "".join(c if c.isalnum() or c == "_" else "_" for c in s.upper())
        parts.append(clean(stem) + ("." + clean(ext) if dot else ""))
    name = "/" + "/".join(parts)
    if is_dir:
        return name
    return name + ("" if "." in parts[-1] else ".") + ";1"


def _parent_dirs(paths):
    dirs = set()
    for path in paths:
        parts = path.split("/")[:-1]
        dirs.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return sorted(dirs)


def write_with_pycdlib(dest, volid, tree, squashfs, bios, efi) -> None:
    import pycdlib

    iso = pycdlib.PyCdlib()
    # Joliet holds 16 UCS-2 characters; like xorriso, cut it there and keep the full
    # volume id (what `root=live:CDLABEL=` matches) in the primary descriptor.
    iso.new(interchange_level=3, vol_ident=volid[:16], sys_ident="LINUX", rock_ridge="1.09",
            joliet=3, app_ident_str="gentoo-zfs-livecd")
    iso.pvd.volume_identifier = volid.encode().ljust(32)
    for directory in _parent_dirs(tree):
        iso.add_directory(iso9660_name(directory, True), rr_name=directory.rsplit("/", 1)[-1],
                          joliet_path="/" + directory)
    for path, data in sorted(tree.items()):
        iso.add_fp(io.BytesIO(data), len(data), iso9660_name(path, False),
                   rr_name=path.rsplit("/", 1)[-1], joliet_path="/" + path)
    iso.add_file(str(squashfs), "/IMAGE.SQUASHFS;1", rr_name="image.squashfs",
                 joliet_path="/image.squashfs")
    if bios:
        iso.add_eltorito(iso9660_name("boot/grub/i386-pc/eltorito.img", False),
                         bootcatfile="/BOOT.CAT;1", rr_bootcatname="boot.cat",
                         joliet_bootcatfile="/boot.cat", boot_load_size=4,
                         boot_info_table=True, media_name="noemul")
    if efi:
        iso.add_eltorito(iso9660_name("efi.img", False), bootcatfile="/BOOT.CAT;1",
                         rr_bootcatname="boot.cat", joliet_bootcatfile="/boot.cat",
                         efi=True, platform_id=0xEF, media_name="noemul")
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    atomic.write_bytes(dest, out.getvalue())


def write_with_xorriso(dest, volid, tree, squashfs, bios, efi, staging: Path) -> None:
    """The ISO as grub-mkrescue has xorriso make it (Rock Ridge, Joliet, El Torito, ESP)."""
    for path, data in tree.items():
        _write(staging / path, data)
    os.link(squashfs, staging / "image.squashfs")
    argv = ["xorriso", "-as", "mkisofs", "-graft-points", "-iso-level", "3", "-r", "-joliet",
            "-volid", volid, "--sort-weight", "0", "/", "--sort-weight", "1", "/boot"]
    if bios:
        argv += ["-b", "boot/grub/i386-pc/eltorito.img", "-no-emul-boot", "-boot-load-size", "4",
                 "-boot-info-table"]
    if efi:
        argv += ["--efi-boot", "efi.img", "-efi-boot-part", "--efi-boot-image"]
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    argv += ["--protective-msdos-label", "-o", str(tmp), str(staging)]
    env = dict(os.environ, SOURCE_DATE_EPOCH=SQUASHFS_TIME)
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True, env=env)
        os.replace(tmp, dest)
    except FileNotFoundError:
        raise UserError("xorriso not found; install xorriso") from None
    except subprocess.CalledProcessError as error:
        raise UserError(f"xorriso failed for {dest}: {error.stderr.strip().splitlines()[-1:]}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _write(path: Path, data, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)
