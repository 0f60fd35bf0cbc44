import json
import os
import subprocess
from pathlib import Path

import pytest

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.kernel import zfscompat

REPO = Path(__file__).resolve().parent.parent
RANGES = REPO / "kernel-configs" / "zfs-kernel-ranges.json"

KERNEL_EBUILD = """# Copyright 2020-2025 Gentoo Authors
EAPI=8
inherit kernel-build
SRC_URI+=" https://example.invalid/linux-{version}.tar.xz"
KEYWORDS="{keywords}"
IUSE="debug experimental hardened"
"""
ZFS_EBUILD = """EAPI=8
inherit autotools dist-kernel-utils
if [[ ${{PV}} == "9999" ]]; then
	inherit git-r3
	EGIT_REPO_URI="https://github.com/openzfs/zfs.git"
else
	SRC_URI="https://github.com/openzfs/zfs/releases/download/zfs-${{PV}}/zfs-${{PV}}.tar.gz"
	KEYWORDS="{keywords}"
fi
"""


def make_snapshot(directory: Path, packages: dict) -> Path:
    """packages: {"cat/name": {"version": "keywords" or None (no KEYWORDS line)}}."""
    tree = directory / "tree"
    for package, versions in packages.items():
        package_dir = tree / package
        (package_dir / "files").mkdir(parents=True, exist_ok=True)
        (package_dir / "metadata.xml").write_text("<pkgmetadata/>\n")
        (package_dir / "Manifest").write_text("DIST x 1 BLAKE2B 00\n")
        (package_dir / "files" / "fix-1.0.patch").write_text("--- a\n+++ b\n")
        name = package.split("/")[1]
        for version, keywords in versions.items():
            template = ZFS_EBUILD if name == "zfs" else KERNEL_EBUILD
            text = template.format(version=version, keywords=keywords or "")
            if keywords is None:
                text = "\n".join(line for line in text.splitlines() if "KEYWORDS" not in line)
            (package_dir / f"{name}-{version}.ebuild").write_text(text)
    (tree / "profiles").mkdir(exist_ok=True)
    (tree / "profiles" / "repo_name").write_text("gentoo\n")
    return read_back(directory)


READER = None  # set for each test by `reader`


@pytest.fixture(autouse=True, params=["commit", "squashfs"])
def reader(request):
    """Each test reads its tree both ways: at a commit of a git repository, as the compat task
    does, and from Catalyst's squashfs of it, as the emulator does."""
    global READER
    READER = request.param


def read_back(directory: Path):
    """The reader of `directory`/tree: a new commit of it, or a squashfs made of it."""
    tree = directory / "tree"
    if READER == "squashfs":
        sqfs = directory / "gentoo-0123abc.sqfs"
        subprocess.run(["mksquashfs", str(tree), str(sqfs), "-quiet", "-no-progress", "-noappend"],
                       check=True)
        return zfscompat.SquashfsTree(sqfs)
    people = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
              "GIT_COMMITTER_EMAIL": "t@t"}
    git = ["git", "-C", str(tree)]
    subprocess.run([*git, "init", "--quiet"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "tree"], check=True, env={**os.environ, **people})
    sha = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    return zfscompat.CommitTree(tree / ".git", sha)


BASE_KERNELS = {
    "6.12.41": "amd64 ~arm64",
    "6.12.41-r1": "amd64 arm64",
    "6.16.12": "amd64 arm64",
    "6.17.1": "~amd64 ~arm64",
}
VIRTUALS = {"6.12.41": "amd64", "6.12.41-r2": "amd64", "6.16.12": "amd64", "6.17.1": "~amd64",
            "6.18.2": "amd64"}


def snapshot(tmp_path, kernels=None, zfs=None, extra=None):
    packages = {
        "sys-kernel/gentoo-kernel": kernels or BASE_KERNELS,
        "virtual/dist-kernel": VIRTUALS,
        "sys-fs/zfs": zfs or {"2.3.4": "amd64 arm64 ~riscv", "2.3.5": "~amd64", "9999": None},
    }
    packages.update(extra or {})
    return make_snapshot(tmp_path, packages)


def test_kernel_inside_range_takes_newest_stable_and_pins_it(tmp_path):
    result = zfscompat.snapshot_compat(snapshot(tmp_path), "amd64", ranges_path=RANGES)
    assert (result.kernel_version, result.zfs_version) == ("6.16.12", "2.3.4")
    assert (result.linux_min, result.linux_max) == ("4.18", "6.16")
    assert result.mask_lines == (">sys-kernel/gentoo-kernel-6.16.12", ">virtual/dist-kernel-6.16.12")


def test_kernel_at_upper_edge_fits_on_major_minor(tmp_path):
    kernels = dict(BASE_KERNELS, **{"6.16.99-r3": "amd64"})
    result = zfscompat.snapshot_compat(snapshot(tmp_path, kernels), "amd64", ranges_path=RANGES)
    assert result.kernel_version == "6.16.99-r3"


def test_kernel_beyond_range_names_the_newest_that_fits(tmp_path):
    kernels = dict(BASE_KERNELS, **{"6.18.2": "amd64 arm64"})
    with pytest.raises(UserError) as error:
        zfscompat.snapshot_compat(snapshot(tmp_path, kernels), "amd64", ranges_path=RANGES)
    assert str(error.value).startswith(
        "ZFS 2.3.4 supports Linux 4.18 to 6.16; this build selects 6.18.2 "
        "(newest gentoo-kernel that fits: 6.16.12); pin kernel.version to 6.16.12")


def test_pinned_kernel_is_newest_matching_pin_and_masks_virtual_revision(tmp_path):
    kernels = dict(BASE_KERNELS, **{"6.18.2": "amd64"})
    result = zfscompat.snapshot_compat(snapshot(tmp_path, kernels), "amd64", kernel_pin="6.12",
                                       ranges_path=RANGES)
    assert result.kernel_version == "6.12.41-r1"
    assert result.mask_lines == (">sys-kernel/gentoo-kernel-6.12.41-r1",
                                 ">virtual/dist-kernel-6.12.41-r2")


def test_pin_matching_nothing_stable_is_an_error(tmp_path):
    with pytest.raises(UserError, match=r"no stable \(amd64\) sys-kernel/gentoo-kernel matches "
                                        r"kernel.version 6.17.*6.16.12"):
        zfscompat.snapshot_compat(snapshot(tmp_path), "amd64", kernel_pin="6.17", ranges_path=RANGES)


def test_invalid_pin_is_an_error(tmp_path):
    with pytest.raises(UserError, match="kernel.version: 'latest' is not a kernel version"):
        zfscompat.snapshot_compat(snapshot(tmp_path), "amd64", kernel_pin="latest",
                                  ranges_path=RANGES)


def test_pinned_kernel_outside_range_is_refused(tmp_path):
    zfs = {"2.2.6": "amd64"}
    with pytest.raises(UserError, match=r"ZFS 2.2.6 supports Linux 3.10 to 6.10; this build "
                                        r"selects 6.12.41-r1 \(no gentoo-kernel in the snapshot fits\)"):
        zfscompat.snapshot_compat(snapshot(tmp_path, zfs=zfs), "amd64", kernel_pin="6.12",
                                  ranges_path=RANGES)


def test_unknown_zfs_release_says_where_to_add_it(tmp_path):
    zfs = {"2.3.4": "amd64", "2.3.10": "amd64"}
    with pytest.raises(UserError) as error:
        zfscompat.snapshot_compat(snapshot(tmp_path, zfs=zfs), "amd64", ranges_path=RANGES)
    message = str(error.value)
    assert "ZFS 2.3.10 is not listed in" in message
    assert "zfs-kernel-ranges.json" in message and "zfs-2.3.10 tag" in message


def test_zfs_revision_uses_release_range_and_live_and_testing_are_ignored(tmp_path):
    zfs = {"2.2.11-r1": "amd64", "2.2.11": "amd64", "2.3.5": "~amd64", "9999": None}
    result = zfscompat.snapshot_compat(snapshot(tmp_path, zfs=zfs), "amd64", ranges_path=RANGES)
    assert result.zfs_version == "2.2.11-r1"
    assert result.linux_max == "6.17"
    assert result.kernel_version == "6.16.12"


def test_other_arch_keywords(tmp_path):
    result = zfscompat.snapshot_compat(snapshot(tmp_path), "arm64", ranges_path=RANGES)
    assert result.kernel_version == "6.16.12"
    riscv = make_snapshot(tmp_path / "riscv", {"sys-kernel/gentoo-kernel": {"6.12.41": "riscv"},
                                              "sys-fs/zfs": {"2.3.4": "~riscv"}})
    with pytest.raises(UserError, match=r"no stable \(riscv\) sys-fs/zfs"):
        zfscompat.snapshot_compat(riscv, "riscv", ranges_path=RANGES)


def test_genkernel_sources_atoms(tmp_path):
    sources = {"6.6.30": "amd64", "6.6.31": "~amd64", "6.12.41": "amd64", "6.13.1": "x86"}
    tree = snapshot(tmp_path, extra={"sys-kernel/gentoo-sources": sources})
    exact = zfscompat.snapshot_compat(tree, "amd64", "=sys-kernel/gentoo-sources-6.6.30",
                                      ranges_path=RANGES)
    assert exact.kernel_version == "6.6.30"
    assert exact.mask_lines == (">sys-kernel/gentoo-sources-6.6.30",)
    newest = zfscompat.snapshot_compat(tree, "amd64", "sys-kernel/gentoo-sources",
                                       ranges_path=RANGES)
    assert newest.kernel_version == "6.12.41"
    testing = zfscompat.snapshot_compat(tree, "amd64", "=sys-kernel/gentoo-sources-6.6.31",
                                        ranges_path=RANGES)
    assert testing.kernel_version == "6.6.31"
    with pytest.raises(UserError, match="gentoo-sources-6.6.29 is not in the snapshot"):
        zfscompat.snapshot_compat(tree, "amd64", "=sys-kernel/gentoo-sources-6.6.29",
                                  ranges_path=RANGES)
    with pytest.raises(UserError, match="6.13.1 is not keyworded for amd64"):
        zfscompat.snapshot_compat(tree, "amd64", "=sys-kernel/gentoo-sources-6.13.1",
                                  ranges_path=RANGES)


def test_missing_snapshot_and_broken_snapshot(tmp_path):
    with pytest.raises(UserError, match="portage snapshot not found"):
        zfscompat.SquashfsTree(tmp_path / "gentoo-none.sqfs")
    junk = tmp_path / "gentoo-junk.sqfs"
    junk.write_bytes(b"not a squashfs" * 100)
    with pytest.raises(UserError, match="unsquashfs cannot list it"):
        zfscompat.snapshot_compat(zfscompat.SquashfsTree(junk), "amd64", ranges_path=RANGES)


def test_a_file_the_tree_lacks_is_named(tmp_path):
    tree = snapshot(tmp_path)
    with pytest.raises(UserError, match="sys-fs/zfs/zfs-0.1.ebuild"):
        tree.read("sys-fs/zfs/zfs-0.1.ebuild")


def test_a_commit_the_repository_lacks(tmp_path):
    repo = tmp_path / "gentoo.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(repo)], check=True)
    missing = zfscompat.CommitTree(repo, "0" * 40)
    with pytest.raises(UserError, match=r"gentoo.git: sys-kernel/gentoo-kernel at 0000000: git ls-tree failed"):
        zfscompat.snapshot_compat(missing, "amd64", ranges_path=RANGES)


def test_no_zfs_in_snapshot(tmp_path):
    tree = make_snapshot(tmp_path, {"sys-kernel/gentoo-kernel": {"6.12.41": "amd64"}})
    with pytest.raises(UserError, match=r"no stable \(amd64\) sys-fs/zfs ebuild"):
        zfscompat.snapshot_compat(tree, "amd64", ranges_path=RANGES)


def test_check_compat_edges_and_hint():
    ranges = zfscompat.load_ranges(RANGES)
    zfscompat.check_compat("2.3.4", "4.18.0", ranges)
    zfscompat.check_compat("2.3.4", "6.16.12-r1", ranges)
    with pytest.raises(UserError, match=r"selects 4.17.9 \(newest gentoo-kernel that fits: 6.16.1\)"):
        zfscompat.check_compat("2.3.4", "4.17.9", ranges, ["4.14.1", "6.16.1", "6.17.0"])
    with pytest.raises(UserError, match=r"ZFS 2.4.0 supports Linux 4.18 to 6.18; this build selects 7.0.1"):
        zfscompat.check_compat("2.4.0", "7.0.1", ranges)
    with pytest.raises(UserError, match="zfs-2.4.0-rc2 tag"):
        zfscompat.check_compat("2.4.0_rc2", "6.12.1", ranges)


def test_ranges_file_holds_every_release_of_the_table():
    ranges = zfscompat.load_ranges(RANGES)
    assert ranges.releases["2.3.1"] == ("4.18", "6.13")
    assert ranges.releases["2.3.2"] == ("4.18", "6.14")
    assert ranges.releases["2.3.3"] == ("4.18", "6.15")
    assert ranges.releases["2.2.10"] == ("4.18", "6.17")
    assert ranges.releases["2.3.7"] == ranges.releases["2.3.8"] == ("4.18", "7.0")
    assert ranges.releases["2.1.16"] == ("3.10", "6.7")
    assert ranges.releases["2.4.4"] == ("4.18", "7.2")
    assert len(ranges.releases) == 24


def test_broken_ranges_files(tmp_path):
    bad = tmp_path / "ranges.json"
    bad.write_text("{nope")
    with pytest.raises(UserError, match="ranges.json: not valid JSON"):
        zfscompat.load_ranges(bad)
    bad.write_text(json.dumps({"releases": {"2.3.4": {"linux_min": "4.18"}}}))
    with pytest.raises(UserError, match=r"releases.2.3.4 needs linux_min and linux_max"):
        zfscompat.load_ranges(bad)
    with pytest.raises(UserError, match="range table not found"):
        zfscompat.load_ranges(tmp_path / "absent.json")


@pytest.mark.parametrize("lower, higher", [
    ("6.12.41", "6.12.41-r1"),
    ("6.12.9", "6.12.41"),
    ("2.4.0_rc2", "2.4.0"),
    ("2.4.0_rc2", "2.4.0_rc10"),
    ("2.4.0_beta1", "2.4.0_rc1"),
    ("2.4.0", "2.4.0_p1"),
    ("2.2.11", "2.2.11-r1"),
    ("2.2.11-r1", "2.3.0"),
    ("6.9", "6.10"),
    ("6.12", "6.12.0"),
    ("1.01", "1.1"),
    ("1.2a", "1.2b"),
])
def test_version_order(lower, higher):
    assert zfscompat.compare_versions(lower, higher) == -1
    assert zfscompat.compare_versions(higher, lower) == 1
    assert zfscompat.compare_versions(higher, higher) == 0


def test_atoms_and_pins():
    atom = zfscompat.parse_atom("=sys-kernel/gentoo-sources-6.6.30")
    assert (atom.operator, atom.package, atom.version) == ("=", "sys-kernel/gentoo-sources", "6.6.30")
    assert zfscompat.parse_atom("sys-kernel/gentoo-sources").version is None
    assert zfscompat.parse_atom("~sys-kernel/gentoo-kernel-6.12.41").matches("6.12.41-r1")
    assert zfscompat.parse_atom("=sys-kernel/gentoo-kernel-6.12*").matches("6.12.41")
    assert not zfscompat.parse_atom(">=sys-kernel/gentoo-kernel-6.13").matches("6.12.41")
    with pytest.raises(UserError, match="no valid version"):
        zfscompat.parse_atom("=sys-kernel/gentoo-sources")
    with pytest.raises(UserError, match="not a package atom"):
        zfscompat.parse_atom("sys-kernel/gentoo-sources:6.6")
    assert zfscompat.matches_pin("6.12.41-r1", "6.12")
    assert zfscompat.matches_pin("6.12.41-r1", "6.12.41")
    assert not zfscompat.matches_pin("6.12.41-r1", "6.12.41-r2")
    assert not zfscompat.matches_pin("6.120.1", "6.12")
    assert not zfscompat.matches_pin("6.12.41", "6.12.4")


def test_mask_lines_for_kernels_without_virtual():
    assert zfscompat.kernel_mask_lines("sys-kernel/gentoo-kernel", "6.12.41-r1", []) == [
        ">sys-kernel/gentoo-kernel-6.12.41-r1", ">virtual/dist-kernel-6.12.41"]


# --- bounds from the snapshot's own ebuilds (what actually stops the build) -------------------
# zfs-kmod 2.2/2.3 (gentoo/gentoo, read_file of a zfs-kmod ebuild): MODULES_KERNEL_MAX=6.7 and
# MODULES_KERNEL_MIN=3.10 at the top, ZFS_KERNEL_COMPAT="${MODULES_KERNEL_MAX}" further down.
KMOD_BOUNDS = 'EAPI=8\nMODULES_KERNEL_MAX={high}\nMODULES_KERNEL_MIN={low}\nZFS_KERNEL_COMPAT="${{MODULES_KERNEL_MAX}}"\n'


def with_bounds(directory, package, version, low, high, zfs=None):
    """A snapshot whose `package`-`version` ebuild states the kernel bounds."""
    extra = {}
    if package == "sys-fs/zfs-kmod":
        extra[package] = {version: "amd64"}
    snapshot(directory, zfs=zfs, extra=extra)
    ebuild = directory / "tree" / package / f"{package.split('/')[1]}-{version}.ebuild"
    ebuild.write_text(KMOD_BOUNDS.format(low=low, high=high) + ebuild.read_text())
    return read_back(directory)


def test_bounds_come_from_zfs_kmod_for_2_3(tmp_path):
    # The table says 6.16 for 2.3.4; the ebuild says 6.12: the ebuild wins.
    tree = with_bounds(tmp_path, "sys-fs/zfs-kmod", "2.3.4", "4.18", "6.12")
    result = zfscompat.snapshot_compat(tree, "amd64", kernel_pin="6.12", ranges_path=RANGES)
    assert (result.linux_min, result.linux_max) == ("4.18", "6.12")
    assert result.bounds_from == "sys-fs/zfs-kmod-2.3.4.ebuild"
    with pytest.raises(UserError, match=r"ZFS 2.3.4 supports Linux 4.18 to 6.12; this build selects 6.16.12"):
        zfscompat.snapshot_compat(tree, "amd64", ranges_path=RANGES)


def test_bounds_come_from_zfs_itself_from_2_4(tmp_path):
    tree = with_bounds(tmp_path, "sys-fs/zfs", "2.4.9", "5.10", "6.18", zfs={"2.4.9": "amd64"})
    result = zfscompat.snapshot_compat(tree, "amd64", ranges_path=RANGES)
    assert (result.zfs_version, result.linux_min, result.linux_max) == ("2.4.9", "5.10", "6.18")
    assert result.bounds_from == "sys-fs/zfs-2.4.9.ebuild"


def test_table_is_only_a_labelled_fallback(tmp_path):
    result = zfscompat.snapshot_compat(snapshot(tmp_path), "amd64", ranges_path=RANGES)
    assert result.bounds_from.startswith(str(RANGES)) and "fallback" in result.bounds_from


@pytest.mark.parametrize("text, bounds", [
    ('MODULES_KERNEL_MAX=6.7\nMODULES_KERNEL_MIN=3.10\n', ("3.10", "6.7")),
    ('\tZFS_KERNEL_COMPAT="6.0"\n', (None, "6.0")),
    ('ZFS_KERNEL_COMPAT="${MODULES_KERNEL_MAX}"\nMODULES_KERNEL_MAX=6.19\n', (None, "6.19")),
    ('unset MODULES_KERNEL_MAX\n', (None, None)),
])
def test_ebuild_kernel_bounds(text, bounds):
    assert zfscompat.ebuild_kernel_bounds(text) == bounds
