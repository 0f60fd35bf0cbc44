"""Static ISO checks on real ISOs built by gentoo_zfs_livecd.rehearsal.fakeiso (pycdlib and xorriso)."""
import shutil
import struct
import subprocess

import pytest

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.iso import grubcfg, inspection
from gentoo_zfs_livecd.rehearsal import fakeiso
from tests.support import require

VOLID = "Gentoo-amd64-20260101"
RELEASE = "6.12.41-gentoo-dist"
OLD = "6.12.38-gentoo-dist"


def build(tmp_path, name="install.iso", **kwargs):
    return fakeiso.build_iso(tmp_path / name, VOLID, work_dir=tmp_path / f"work-{name}", **kwargs)


def failure(tmp_path, expected_volid=VOLID, **kwargs):
    iso = build(tmp_path, **kwargs)
    with pytest.raises(UserError) as caught:
        inspection.verify_iso(iso, expected_volid)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(iso))
    return message


def test_good_iso_gives_the_facts(tmp_path):
    iso = build(tmp_path)
    facts = inspection.verify_iso(iso, VOLID).as_dict()
    assert facts["volume_id"] == VOLID
    assert facts["size"] == iso.stat().st_size
    assert facts["kernel"] == "/boot/gentoo" and facts["initramfs"] == "/boot/gentoo.igz"
    assert facts["kernel_release"] == RELEASE
    assert facts["boot"] == ["bios", "efi"]
    assert facts["zfs_module"] == f"/usr/lib/modules/{RELEASE}/extra/zfs.ko"
    assert facts["zfs_module_version"] == "2.3.4-r0-gentoo"
    assert facts["zfs_tools_package"] == "sys-fs/zfs-2.3.4"
    assert facts["zfs_version"] == "2.3.4"
    assert any("vermagic" in item for item in facts["checked"])
    assert len(facts["checked"]) >= 10


def test_xorriso_made_iso_like_grub_mkrescue(tmp_path):
    require(shutil.which("xorriso"), "xorriso is not installed", "apt-get install xorriso")
    iso = build(tmp_path, writer="xorriso", module_compression="xz")
    toc = subprocess.run(["xorriso", "-indev", str(iso), "-report_el_torito", "plain"],
                         capture_output=True, text=True).stdout
    assert "UEFI" in toc and "BIOS" in toc
    facts = inspection.verify_iso(iso, VOLID)
    assert facts.kernel_release == RELEASE
    assert facts.boot == ["bios", "efi"]
    assert facts.zfs_module.endswith("zfs.ko.xz")


def test_no_zfs_module(tmp_path):
    message = failure(tmp_path, zfs_module=False)
    assert f"ISO has no zfs module for {RELEASE}" in message
    assert "extra/spl.ko" in message


def test_modules_only_for_another_release(tmp_path):
    message = failure(tmp_path, module_releases=[OLD])
    assert f"ISO has no zfs module for {RELEASE} (modules found for: {OLD})" in message


def test_vermagic_for_another_release(tmp_path):
    message = failure(tmp_path, vermagic_release=OLD)
    assert f"zfs.ko was built for {OLD}, expected {RELEASE}" in message


def test_two_module_releases(tmp_path):
    message = failure(tmp_path, module_releases=[RELEASE, OLD])
    assert f"modules for 2 kernels ({OLD}, {RELEASE}), expected only {RELEASE}" in message


@pytest.mark.parametrize("compression,suffix", [("xz", ".xz"), ("zst", ".zst"), ("gz", ".gz")])
def test_compressed_modules(tmp_path, compression, suffix):
    iso = build(tmp_path, module_compression=compression)
    facts = inspection.verify_iso(iso, VOLID)
    assert facts.zfs_module == f"/usr/lib/modules/{RELEASE}/extra/zfs.ko{suffix}"
    assert facts.zfs_module_version == "2.3.4-r0-gentoo"


def test_compressed_module_with_wrong_vermagic_is_still_read(tmp_path):
    message = failure(tmp_path, module_compression="zst", vermagic_release=OLD)
    assert f"zfs.ko.zst was built for {OLD}" in message


def test_user_tools_differ_from_module(tmp_path):
    message = failure(tmp_path, tools_version="2.3.3")
    assert "ZFS user tools are sys-fs/zfs-2.3.3 but" in message and "2.3.4-r0-gentoo" in message


def test_gentoo_revisions_are_ignored(tmp_path):
    iso = build(tmp_path, zfs_version="2.3.4-r1-gentoo", tools_version="2.3.4")
    assert inspection.verify_iso(iso, VOLID).zfs_version == "2.3.4"


def test_older_tree_with_zfs_kmod_in_the_vdb(tmp_path):
    iso = build(tmp_path, vdb_package="sys-fs/zfs-kmod", zfs_version="2.2.7-r0-gentoo",
                kernel_release="6.6.58-gentoo-dist")
    facts = inspection.verify_iso(iso, VOLID)
    assert facts.zfs_tools_package == "sys-fs/zfs-kmod-2.2.7"
    assert facts.kernel_release == "6.6.58-gentoo-dist"


def test_no_zfs_in_the_vdb(tmp_path):
    message = failure(tmp_path, vdb_package="sys-apps/portage")
    assert "no sys-fs/zfs or sys-fs/zfs-kmod in /var/db/pkg" in message


def test_wrong_volume_id(tmp_path):
    message = failure(tmp_path, expected_volid="Gentoo-amd64-20260102")
    assert f"volume id is '{VOLID}', expected 'Gentoo-amd64-20260102'" in message


def test_missing_efi_boot_file(tmp_path):
    message = failure(tmp_path, efi=False)
    assert "ISO has no EFI boot file" in message and "found boot support for: bios" in message


def test_missing_bios_boot_file(tmp_path):
    message = failure(tmp_path, bios=False)
    assert "ISO has no BIOS boot file" in message and "found boot support for: efi" in message


def test_not_an_iso(tmp_path):
    path = tmp_path / "broken.iso"
    path.write_bytes(b"\0" * 100_000)
    with pytest.raises(UserError, match="not a readable ISO 9660 image"):
        inspection.verify_iso(path, VOLID)


def test_grub_cfg_follows_catalyst_template(tmp_path):
    text = fakeiso.grub_cfg(VOLID, "dokeymap nodhcp")
    assert f"\tsearch --no-floppy --set=root -l {VOLID}\n" in text
    assert (f"\tlinux /boot/gentoo dokeymap nodhcp root=live:CDLABEL={VOLID} rd.live.dir=/ "
            "rd.live.squashimg=image.squashfs cdroot\n") in text
    assert text.count("\tinitrd /boot/gentoo.igz\n") == 2
    assert "cdroot rd.live.ram=1\n" in text
    entry = grubcfg.first_entry(text, "grub.cfg")
    assert (entry.kernel, entry.initrd) == ("/boot/gentoo", "/boot/gentoo.igz")


def test_kernel_release_from_setup_header():
    image = fakeiso.bzimage("6.12.41")
    assert inspection.kernel_release(image) == "6.12.41"
    pointer = struct.unpack_from("<H", image, 0x20E)[0] + 0x200
    assert image[pointer:].startswith(b"6.12.41 (builder@host) #1 SMP PREEMPT_DYNAMIC")
    assert image[0x1FE:0x200] == b"\x55\xaa"


def test_kernel_release_rejects_a_non_bzimage():
    image = bytearray(fakeiso.bzimage("6.12.41"))
    image[0x202:0x206] = b"XXXX"
    with pytest.raises(ValueError, match="HdrS"):
        inspection.kernel_release(bytes(image))
    with pytest.raises(ValueError, match="too short"):
        inspection.kernel_release(b"MZ")


def test_modinfo_agrees_with_kmod(tmp_path):
    module = tmp_path / "zfs.ko"
    module.write_bytes(fakeiso.module_elf(fakeiso.zfs_modinfo("2.3.4-r0-gentoo", RELEASE)))
    info = inspection.modinfo(module.read_bytes())
    assert info["vermagic"] == [f"{RELEASE} SMP preempt mod_unload "]
    assert info["license"] == ["Dual MIT/GPL", "Dual BSD/GPL", "CDDL"]
    tool = shutil.which("modinfo") or shutil.which("modinfo", path="/usr/sbin:/sbin")
    require(tool, "kmod's modinfo is not installed", "apt-get install kmod")
    for field in ("version", "vermagic", "name"):
        out = subprocess.run([tool, "-F", field, str(module)], check=True, capture_output=True,
                             text=True).stdout
        assert out.rstrip("\n") == info[field][0]  # exactly, vermagic's trailing space too


def test_modinfo_rejects_non_elf_and_missing_section():
    with pytest.raises(UserError, match="not an ELF"):
        inspection.modinfo(b"just text" * 10)
    elf = bytearray(fakeiso.module_elf([("name", "zfs")]))
    at = elf.find(b".modinfo")
    elf[at:at + 8] = b".notinfo"
    with pytest.raises(UserError, match="no .modinfo"):
        inspection.modinfo(bytes(elf))


def test_merged_usr_symlinks_are_followed(tmp_path):
    build(tmp_path)
    root = inspection.LiveRoot(tmp_path / "work-install.iso" / "image.squashfs")
    assert root.resolve("sbin/zpool") == "usr/bin/zpool"
    assert root.resolve("usr/sbin/zfs") == "usr/bin/zfs"
    assert root.resolve(f"lib/modules/{RELEASE}/extra/zfs.ko") == f"usr/lib/modules/{RELEASE}/extra/zfs.ko"
    assert root.resolve("lib64/libzfs.so.6") == "usr/lib64/libzfs.so.6.0.0"
    assert root.resolve("lib/no-such-file") is None


@pytest.mark.parametrize("version,base", [("2.3.4-r0-gentoo", "2.3.4"), ("2.3.4-r12", "2.3.4"),
                                          ("2.3.4", "2.3.4"), ("2.4.0_rc2-r1", "2.4.0_rc2")])
def test_base_version(version, base):
    assert inspection.base_version(version) == base


def test_same_arguments_give_the_same_iso_tree_and_squashfs(tmp_path):
    first = build(tmp_path, name="a.iso")
    second = build(tmp_path, name="b.iso")
    squashfs = [(tmp_path / f"work-{n}" / "image.squashfs").read_bytes() for n in ("a.iso", "b.iso")]
    assert squashfs[0] == squashfs[1]
    assert first.stat().st_size == second.stat().st_size


def test_work_dir_can_be_reused(tmp_path):
    build(tmp_path, name="a.iso")
    iso = fakeiso.build_iso(tmp_path / "b.iso", VOLID, work_dir=tmp_path / "work-a.iso",
                            kernel_release=OLD)
    assert inspection.verify_iso(iso, VOLID).kernel_release == OLD


def test_iso_names_list_the_top_level(tmp_path):
    import pycdlib
    iso = pycdlib.PyCdlib()
    iso.open(str(build(tmp_path, efi=False)))
    try:
        names = inspection.IsoNames(iso)
        assert names.listdir("/") == sorted([".disk", "README.txt", "boot", "boot.cat",
                                             "image.squashfs", "livecd"])
        assert names.exists("/boot/gentoo") and not names.exists("/boot")
        assert names.read("/boot/grub/grub.cfg").startswith(b"set default=0\n")
    finally:
        iso.close()


def test_long_volume_id_is_refused_like_catalyst(tmp_path):
    with pytest.raises(UserError, match="must not exceed 32 characters"):
        fakeiso.build_iso(tmp_path / "x.iso", "G" * 33)
    assert not (tmp_path / "x.iso").exists()


def test_catalyst_default_volume_id_with_a_space_is_reported(tmp_path):
    iso = fakeiso.build_iso(tmp_path / "x.iso", "catalyst 2026.01")
    with pytest.raises(UserError, match="volume id is 'catalyst 2026.01', expected"):
        inspection.verify_iso(iso, VOLID)
