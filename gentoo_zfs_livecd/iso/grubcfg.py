"""The ISO's grub.cfg, read as GRUB reads its first menu entry: the one parser of that file.

Catalyst 4.1 (targets/support/create-iso.sh) writes `linux`/`initrd` lines whose paths may carry
a GRUB device prefix such as `($root)`; inside the ISO that is the same file without it.
"""
import re
import shlex
from dataclasses import dataclass

from gentoo_zfs_livecd.errors import UserError

GRUB_CFG = "/boot/grub/grub.cfg"
DEFAULT_INITRD = "/boot/gentoo.igz"
_DEVICE = re.compile(r"^\([^)]*\)")


@dataclass(frozen=True)
class BootEntry:
    """Kernel path, initrd path (inside the ISO) and kernel arguments of a GRUB menu entry."""

    kernel: str
    initrd: str
    args: tuple[str, ...]


def first_entry(grub_cfg: str, source: str) -> BootEntry:
    """Kernel, initrd and arguments of the first `menuentry` (`source` names the file in errors)."""
    kernel = initrd = None
    args: tuple[str, ...] = ()
    for words in _first_entry_lines(grub_cfg, source):
        if words[0] in ("linux", "linux16", "linuxefi") and len(words) > 1:
            kernel, args = _without_device(words[1]), tuple(words[2:])
        elif words[0] in ("initrd", "initrd16", "initrdefi") and len(words) > 1:
            initrd = _without_device(words[1])
    if kernel is None:
        raise UserError(f"{source}: no `linux` line in the first menuentry; the ISO's GRUB configuration "
                        "cannot boot a kernel")
    return BootEntry(kernel=kernel, initrd=initrd or DEFAULT_INITRD, args=args)


def _first_entry_lines(grub_cfg: str, source: str):
    """The words of each line inside the first menuentry's braces."""
    in_entry = False
    for raw in grub_cfg.splitlines():
        line = raw.strip()
        if not in_entry:
            in_entry = line.startswith("menuentry")
            continue
        if line.startswith("}"):
            return
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise UserError(f"{source}: cannot parse line {line!r} of the first menuentry ({exc}); "
                            "fix its quoting") from exc
        if words:
            yield words


def _without_device(path: str) -> str:
    """`($root)/boot/gentoo` -> `/boot/gentoo`."""
    return _DEVICE.sub("", path)
