"""The CD overlay carries a GRUB theme where newer Catalyst's grub.cfg looks for one."""
import re

from gentoo_zfs_livecd.checkout import ROOT

# gentoo/catalyst master (commit 6950b11b) writes this into the ISO's grub.cfg.
THEME = "boot/grub/themes/gentoo_frosted/theme.txt"
GLOBAL = re.compile(r'^[a-z-]+: ".*"$')
COMPONENT = re.compile(r"^\+ [a-z_]+ \{$")
PROPERTY = re.compile(r'^[a-z_]+ = ("[^"]*"|-?\d+%?)$')


def test_the_theme_is_in_the_cd_overlay_at_catalysts_path():
    assert (ROOT / "overlay" / "cd_overlay" / THEME).is_file()


def test_the_theme_is_grub_theme_syntax():
    depth = 0
    for number, raw in enumerate((ROOT / "overlay" / "cd_overlay" / THEME).read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line == "}":
            depth -= 1
        elif depth == 0 and COMPONENT.match(line):
            depth += 1
        else:
            assert (PROPERTY if depth else GLOBAL).match(line), f"theme.txt:{number}: {line}"
        assert depth in (0, 1), f"theme.txt:{number}: braces"
    assert depth == 0
