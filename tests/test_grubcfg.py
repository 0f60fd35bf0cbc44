"""The one grub.cfg reader, used by `verify` (inspection) and `boottest` (QEMU)."""
import pytest

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.iso import grubcfg

# Catalyst's grub.cfg may name files with GRUB's device prefix; verify once read the initrd as
# `($root)/boot/gentoo.igz` here while the boot test read `/boot/gentoo.igz`.
DEVICE_PREFIXED = """set default=0
menuentry 'Boot LiveCD (kernel: gentoo)' --class gnu-linux --class os {
\tsearch --no-floppy --set=root -l GENTOO
\tlinux ($root)/boot/gentoo dokeymap root=live:CDLABEL=GENTOO 'quoted arg'
\tinitrd ($root)/boot/gentoo.igz
}
menuentry 'second' {
\tlinux /boot/other
}
"""


def test_device_prefix_is_dropped_from_kernel_and_initrd():
    entry = grubcfg.first_entry(DEVICE_PREFIXED, "grub.cfg")
    assert entry == grubcfg.BootEntry(kernel="/boot/gentoo", initrd="/boot/gentoo.igz",
                                      args=("dokeymap", "root=live:CDLABEL=GENTOO", "quoted arg"))


def test_inspection_and_boot_test_read_grub_cfg_with_the_same_function():
    from gentoo_zfs_livecd.iso import inspection, qemuboot
    assert inspection.first_entry is grubcfg.first_entry
    assert qemuboot.first_entry is grubcfg.first_entry


def test_paths_from_a_non_default_entry_and_default_initrd():
    entry = grubcfg.first_entry("menuentry 'x' {\n\tlinux /boot/vmlinuz-6.12 root=x\n}\n", "cfg")
    assert (entry.kernel, entry.initrd, entry.args) == ("/boot/vmlinuz-6.12", "/boot/gentoo.igz", ("root=x",))


@pytest.mark.parametrize("text, message", [
    ("set timeout=1\nmenuentry 'memtest' {\n  chainloader /memtest.efi64\n}\n", "no `linux` line"),
    ("menuentry 'x' {\n  linux /boot/k 'unclosed\n}\n", "cannot parse line"),
])
def test_unbootable_entries_are_one_line_errors(text, message):
    with pytest.raises(UserError, match=f"cfg: {message}"):
        grubcfg.first_entry(text, "cfg")
