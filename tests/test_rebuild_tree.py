"""The tree's history in a real bare repository: changed paths, profile inheritance, and the
refs that keep pinned commits through `git gc`."""
import subprocess

import pytest

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.rebuild import tree as history
from tests.support.portage_tree import PROFILE, PortageTree


@pytest.fixture
def portage(tmp_path):
    return PortageTree(tmp_path)


def git(bare, *args):
    return subprocess.run(["git", "--git-dir", str(bare), *args], capture_output=True, text=True)


def test_changed_paths_and_lines(portage):
    a = portage.head
    b = portage.commit({"app-misc/screen/screen-5.0.1.ebuild": "EAPI=8\n", "licenses/GPL-2": None,
                        "profiles/package.mask": "# masks\nsys-fs/zfs-kmod\n"}, "change")
    assert history.changed_paths(portage.bare, a, b) == (
        "app-misc/screen/screen-5.0.1.ebuild", "licenses/GPL-2", "profiles/package.mask")
    assert history.changed_lines(portage.bare, a, b, "profiles/package.mask") == (">=dev-lang/example-2",
                                                                                  "sys-fs/zfs-kmod")
    assert history.changed_paths(portage.bare, b, b) == ()


def test_profile_chain_follows_every_parent_form(portage):
    assert history.profile_chain(portage.bare, portage.head, PROFILE) == (
        "profiles/base", "profiles/default/linux", "profiles/arch/base", "profiles/arch/amd64",
        "profiles/default/linux/amd64", "profiles/features/multilib", f"profiles/{PROFILE}")


def test_profile_chain_skips_other_repositories_and_reads_the_pinned_commit(portage):
    a = portage.head
    b = portage.commit({f"profiles/{PROFILE}/parent": "..\nmusl:base\n"}, "parent")
    assert "profiles/features/multilib" in history.profile_chain(portage.bare, a, PROFILE)
    assert history.profile_chain(portage.bare, b, PROFILE)[-2:] == ("profiles/default/linux/amd64",
                                                                    f"profiles/{PROFILE}")


def test_a_missing_or_circular_profile_is_one_error(portage):
    with pytest.raises(UserError, match=r"profile default/linux/amd64/99\.0: profile profiles/default/linux/amd64/"
                                        r"99\.0 does not exist at commit"):
        history.profile_chain(portage.bare, portage.head, "default/linux/amd64/99.0")
    b = portage.commit({"profiles/base/parent": f"../{PROFILE}\n"}, "loop")
    with pytest.raises(UserError, match="inherits itself"):
        history.profile_chain(portage.bare, b, PROFILE)


def test_eclasses_of_removed_packages_from_the_metadata_cache(portage):
    assert history.md5_cache_eclasses(portage.bare, portage.head, ["sys-kernel/gentoo-kernel", "sys-fs/zfs",
                                                                    "sys-kernel/dracut", "sys-apps/absent"]) == {
        "sys-apps/absent": (), "sys-fs/zfs": ("flag-o-matic", "linux-info"),
        "sys-kernel/dracut": (), "sys-kernel/gentoo-kernel": ("kernel-build",)}


def test_a_pinned_commit_survives_gc_until_released(portage):
    bare = portage.bare
    orphan = git(bare, "commit-tree", "-m", "orphan", f"{portage.head}^{{tree}}").stdout.strip()
    git(bare, "config", "gc.reflogExpire", "now")
    history.keep_reachable(bare, orphan)
    assert git(bare, "gc", "--quiet", "--prune=now").returncode == 0
    assert git(bare, "cat-file", "-e", orphan).returncode == 0
    assert history.pinned(bare) == {orphan}
    assert history.release_pins(bare, keep=[portage.head]) == [orphan]
    assert history.pinned(bare) == set()
    git(bare, "gc", "--quiet", "--prune=now")
    assert git(bare, "cat-file", "-e", orphan).returncode != 0


def test_parent_line_forms():
    assert history.parent_dir("../base", "profiles/arch/amd64", "gentoo") == "profiles/arch/base"
    assert history.parent_dir(":arch/amd64", "profiles/x", "gentoo") == "profiles/arch/amd64"
    assert history.parent_dir("gentoo:targets/systemd", "profiles/x", "gentoo") == "profiles/targets/systemd"
    assert history.parent_dir("musl:base", "profiles/x", "gentoo") is None
