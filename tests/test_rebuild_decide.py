"""Keep-or-rebuild decisions against a real git repository standing in for gentoo.git: every
test commits one change and asserts the exact decision of every stage."""
from datetime import datetime, timedelta, timezone

import pytest

from gentoo_zfs_livecd.rebuild import decide as rebuild
from gentoo_zfs_livecd.rebuild.holdings import Holdings, spec_removed_packages
from gentoo_zfs_livecd.rebuild.tree import GitTree, md5_cache_eclasses
from tests.support.portage_tree import CD_ONLY, KERNEL_PACKAGES, LIVE_ROOT, PROFILE, SYSTEM, UNMERGED, PortageTree

NOW = datetime(2026, 1, 10, tzinfo=timezone.utc)
CHAIN = ["stage1", "stage3", "installcd-stage1", "iso"]


@pytest.fixture
def tree(tmp_path):
    return PortageTree(tmp_path)


def states(tree, built_from=None, **overrides):
    """The four stages, all built from `built_from` (default: the current head), holding what
    stages built from this tree hold."""
    a = built_from or tree.head
    spec = {"livecd/unmerge": list(UNMERGED), "boot/kernel/gentoo/packages": list(KERNEL_PACKAGES)}
    removed = md5_cache_eclasses(tree.bare, a, spec_removed_packages(spec))
    held = {
        "stage1": Holdings(PROFILE, dict(SYSTEM)),
        "stage3": Holdings(PROFILE, dict(SYSTEM)),
        "installcd-stage1": Holdings(PROFILE, {**SYSTEM, **CD_ONLY}),
        "iso": Holdings(PROFILE, {**SYSTEM, **CD_ONLY, **LIVE_ROOT}, removed),
    }
    return [rebuild.StageState(name, a, held[name], overrides.get(name)) for name in CHAIN]


def decide_after(tree, change, **options):
    """Decisions for stages built from the head, once `change(tree)` has made a new commit."""
    stages = states(tree)
    a = tree.head
    b = change(tree)
    options.setdefault("full_rebuild_days", None)
    decisions = rebuild.decide(stages, b, GitTree(tree.bare), now=NOW, **options)
    return a[:7], b[:7], [d.line for d in decisions]


def kept(a, b):
    return [f"stage1: kept (built from {a}; none of its 2 packages, 2 eclasses or its profile changed in {a}..{b})",
            f"stage3: kept (built from {a}; none of its 2 packages, 2 eclasses or its profile changed in {a}..{b})",
            f"installcd-stage1: kept (built from {a}; none of its 3 packages, 3 eclasses or its profile changed "
            f"in {a}..{b})",
            f"iso: kept (built from {a}; none of its 7 packages, 6 eclasses or its profile changed in {a}..{b})"]


def test_a_package_no_stage_holds_rebuilds_nothing(tree):
    a, b, lines = decide_after(tree, lambda t: t.commit({"app-misc/unheld/unheld-1.1.ebuild": "EAPI=8\n"}, "bump"))
    assert lines == kept(a, b)


def test_zfs_kmod_rebuilds_only_the_iso(tree):
    a, b, lines = decide_after(tree, lambda t: t.commit({"sys-fs/zfs-kmod/zfs-kmod-2.3.5.ebuild": "EAPI=8\n"}, "bump"))
    assert lines == kept(a, b)[:3] + ["iso: rebuild (sys-fs/zfs-kmod changed)"]


def test_a_package_only_the_cd_holds_rebuilds_installcd_stage1_and_iso(tree):
    a, b, lines = decide_after(tree, lambda t: t.commit({"app-misc/screen/screen-5.0.1.ebuild": "EAPI=8\n"}, "bump"))
    assert lines == kept(a, b)[:2] + ["installcd-stage1: rebuild (app-misc/screen changed)",
                                      "iso: rebuild (installcd-stage1 rebuilt)"]


def test_a_system_package_rebuilds_every_stage(tree):
    a, b, lines = decide_after(tree, lambda t: t.commit({"sys-libs/glibc/files/fix.patch": "--- a\n"}, "patch"))
    assert lines == ["stage1: rebuild (sys-libs/glibc changed)", "stage3: rebuild (stage1 rebuilt)",
                     "installcd-stage1: rebuild (stage3 rebuilt)", "iso: rebuild (installcd-stage1 rebuilt)"]


def test_an_eclass_a_system_package_inherited_rebuilds_every_stage(tree):
    a, b, lines = decide_after(tree, lambda t: t.append("eclass/toolchain-funcs.eclass", "# fix\n", "eclass"))
    assert lines[0] == "stage1: rebuild (eclass toolchain-funcs changed)"
    assert [line.split(" (")[0] for line in lines] == [f"{s}: rebuild" for s in CHAIN]


def test_an_eclass_only_an_unmerged_kernel_package_inherited_rebuilds_the_iso(tree):
    a, b, lines = decide_after(tree, lambda t: t.append("eclass/kernel-build.eclass", "# fix\n", "eclass"))
    assert lines == kept(a, b)[:3] + ["iso: rebuild (eclass kernel-build changed)"]


def test_package_mask_for_an_unrelated_package_rebuilds_nothing(tree):
    a, b, lines = decide_after(tree, lambda t: t.append("profiles/package.mask", "app-misc/unheld\n", "mask"))
    assert lines == kept(a, b)


def test_package_mask_for_a_held_package_rebuilds_from_the_first_stage_holding_it(tree):
    a, b, lines = decide_after(tree, lambda t: t.append("profiles/package.mask", ">=app-misc/screen-5\n", "mask"))
    assert lines == kept(a, b)[:2] + ["installcd-stage1: rebuild (profiles/package.mask names app-misc/screen)",
                                      "iso: rebuild (installcd-stage1 rebuilt)"]


def test_removing_a_mask_line_counts_as_well(tree):
    tree.append("profiles/package.mask", "=sys-fs/zfs-kmod-2.3.4\n", "mask")
    a, b, lines = decide_after(tree, lambda t: t.commit(
        {"profiles/package.mask": "# masks\n>=dev-lang/example-2\n"}, "unmask"))
    assert lines == kept(a, b)[:3] + ["iso: rebuild (profiles/package.mask names sys-fs/zfs-kmod)"]


def test_the_profiles_make_defaults_rebuilds_every_stage(tree):
    a, b, lines = decide_after(tree, lambda t: t.append(f"profiles/{PROFILE}/make.defaults", 'USE="$USE zfs"\n', "x"))
    assert lines[0] == f"stage1: rebuild (profile file profiles/{PROFILE}/make.defaults changed)"
    assert [line.split(" (")[0] for line in lines] == [f"{s}: rebuild" for s in CHAIN]


@pytest.mark.parametrize("path", [
    "profiles/base/package.use.mask",               # relative parent, several levels up
    "profiles/arch/amd64/make.defaults",            # ':arch/amd64'
    "profiles/arch/base/make.defaults",             # its own parent
    "profiles/features/multilib/make.defaults",     # 'gentoo:features/multilib'
    "profiles/default/linux/amd64/23.0/package.use.force/zfs",  # directory form of a profile file
])
def test_a_file_of_an_inherited_profile_rebuilds_every_stage(tree, path):
    a, b, lines = decide_after(tree, lambda t: t.commit({path: "# changed\n" + (
        (t.work / path).read_text() if (t.work / path).exists() else "")}, "profile"))
    assert lines[0] == f"stage1: rebuild (profile file {path} changed)"


@pytest.mark.parametrize("path", ["metadata/layout.conf", "profiles/eapi", "profiles/repo_name", "profiles/arch.list"])
def test_a_repository_setting_rebuilds_every_stage(tree, path):
    a, b, lines = decide_after(tree, lambda t: t.append(path, "\n", "setting"))
    assert lines[0] == f"stage1: rebuild ({path} changed)"


@pytest.mark.parametrize("path", [
    "metadata/timestamp.chk", "metadata/news/2026-01-01-example/2026-01-01-example.en.txt",
    "metadata/glsa/glsa-202601-01.xml", "metadata/dtd/metadata.dtd", "metadata/xml-schema/metadata.xsd",
    "metadata/pkg_desc_index", "sys-libs/glibc/metadata.xml", "eclass/tests/flag-o-matic.sh", "licenses/GPL-2",
    "profiles/use.desc", f"profiles/{PROFILE}/desktop/make.defaults",  # a sub-profile no stage uses
])
def test_paths_that_never_count_by_themselves(tree, path):
    a, b, lines = decide_after(tree, lambda t: t.commit({path: "changed\n"}, "noise"))
    assert lines == kept(a, b)


def test_a_metadata_cache_entry_counts_as_its_package(tree):
    a, b, lines = decide_after(tree, lambda t: t.append("metadata/md5-cache/sys-fs/zfs-kmod-2.3.4", "x\n", "cache"))
    assert lines == kept(a, b)[:3] + ["iso: rebuild (sys-fs/zfs-kmod changed)"]


def test_a_package_move_naming_a_held_package(tree):
    a, b, lines = decide_after(tree, lambda t: t.append(
        "profiles/updates/1Q-2026", "move sys-apps/baselayout sys-apps/baselayout-new\n", "move"))
    assert lines[0] == "stage1: rebuild (profiles/updates/1Q-2026 names sys-apps/baselayout)"


def test_several_reasons_in_one_line(tree):
    a, b, lines = decide_after(tree, lambda t: t.commit({
        "sys-fs/zfs/zfs-2.3.5.ebuild": "EAPI=8\n", "sys-fs/zfs-kmod/zfs-kmod-2.3.5.ebuild": "EAPI=8\n",
        "eclass/linux-info.eclass": "# new\n", "profiles/package.mask": "sys-fs/zfs-kmod\n"}, "several"))
    assert lines[3] == ("iso: rebuild (sys-fs/zfs, sys-fs/zfs-kmod changed; eclass linux-info changed; "
                        "profiles/package.mask names sys-fs/zfs-kmod)")


def test_an_unchanged_tree_keeps_every_stage(tree):
    decisions = rebuild.decide(states(tree), tree.head, GitTree(tree.bare), full_rebuild_days=7,
                               last_full_build=NOW - timedelta(days=30), now=NOW)
    assert [d.line for d in decisions] == [f"{s}: kept (built from {tree.head[:7]}; tree unchanged)" for s in CHAIN]
    assert {d.snapshot for d in decisions} == {tree.head}


def test_kept_stages_stay_on_their_commit_and_rebuilt_ones_move(tree):
    a = tree.head
    b = tree.commit({"app-misc/screen/screen-5.0.1.ebuild": "EAPI=8\n"}, "bump")
    decisions = rebuild.decide(states(tree, a), b, GitTree(tree.bare), full_rebuild_days=None, now=NOW)
    assert [d.snapshot for d in decisions] == [a, a, b, b]
    assert [d.to_json()["rebuild"] for d in decisions] == [False, False, True, True]


def test_stages_built_from_different_commits(tree):
    a = tree.head
    middle = tree.commit({"app-misc/screen/screen-5.0.1.ebuild": "EAPI=8\n"}, "bump")
    b = tree.commit({"sys-fs/zfs-kmod/zfs-kmod-2.3.5.ebuild": "EAPI=8\n"}, "bump")
    stages = states(tree, a)
    stages[2:] = [rebuild.StageState(s.name, middle, s.holdings) for s in stages[2:]]
    lines = [d.line for d in rebuild.decide(stages, b, GitTree(tree.bare), full_rebuild_days=None, now=NOW)]
    assert lines[2] == (f"installcd-stage1: kept (built from {middle[:7]}; none of its 3 packages, 3 eclasses "
                        f"or its profile changed in {middle[:7]}..{b[:7]})")
    assert lines[3] == "iso: rebuild (sys-fs/zfs-kmod changed)"


def test_always_rebuilds_every_stage_when_the_tree_moved(tree):
    a, b, lines = decide_after(tree, lambda t: t.append("metadata/timestamp.chk", "x\n", "ts"), rebuild="always")
    assert lines == [f"{s}: rebuild (tree moved {a}..{b}; snapshot.rebuild: always)" if s == "stage1"
                     else f"{s}: rebuild ({CHAIN[i - 1]} rebuilt)" for i, s in enumerate(CHAIN)]


def test_full_rebuild_after_n_days_when_the_tree_moved(tree):
    a, b, lines = decide_after(tree, lambda t: t.append("metadata/timestamp.chk", "x\n", "ts"),
                               full_rebuild_days=7, last_full_build=NOW - timedelta(days=8))
    assert lines[0] == "stage1: rebuild (last full build 8 days ago; snapshot.full_rebuild_days: 7)"
    assert all(" rebuild (" in line for line in lines)
    a, b, lines = decide_after(tree, lambda t: t.append("metadata/timestamp.chk", "y\n", "ts"),
                               full_rebuild_days=7, last_full_build=NOW - timedelta(days=6))
    assert lines == kept(a, b)


def test_own_inputs_and_missing_artifacts_rebuild_as_before(tree):
    stages = states(tree, **{"stage3": "its spec changed"})
    stages[0] = rebuild.StageState("stage1", None, None)
    lines = [d.line for d in rebuild.decide(stages, tree.head, GitTree(tree.bare), now=NOW)]
    assert lines == ["stage1: rebuild (not built yet)", "stage3: rebuild (its spec changed)",
                     "installcd-stage1: rebuild (stage3 rebuilt)", "iso: rebuild (installcd-stage1 rebuilt)"]
    unrecorded = [rebuild.StageState(s.name, s.built_from, None) for s in states(tree)]
    b = tree.commit({"licenses/MIT": "MIT\n"}, "license")
    lines = [d.line for d in rebuild.decide(unrecorded, b, GitTree(tree.bare), full_rebuild_days=None, now=NOW)]
    assert lines[0] == "stage1: rebuild (what it holds is not recorded)"


def test_an_unknown_policy_is_refused(tree):
    with pytest.raises(ValueError, match="sometimes"):
        rebuild.decide(states(tree), tree.head, GitTree(tree.bare), rebuild="sometimes")


@pytest.mark.parametrize("path, touch", [
    ("sys-fs/zfs/zfs-2.3.4.ebuild", ("package", "sys-fs/zfs")),
    ("sys-fs/zfs/files/zfs.initd", ("package", "sys-fs/zfs")),
    ("sys-fs/zfs/Manifest", ("package", "sys-fs/zfs")),
    ("sys-fs/zfs/metadata.xml", ("ignored", "sys-fs/zfs/metadata.xml")),
    ("sys-fs/metadata.xml", ("other", "sys-fs/metadata.xml")),
    ("metadata/md5-cache/sys-devel/gcc-config-2.11-r1", ("package", "sys-devel/gcc-config")),
    ("eclass/linux-mod-r1.eclass", ("eclass", "linux-mod-r1")),
    ("eclass/tests/linux-mod-r1.sh", ("other", "eclass/tests/linux-mod-r1.sh")),
    ("metadata/timestamp.x", ("ignored", "metadata/timestamp.x")),
    ("metadata/layout.conf", ("repository", "metadata/layout.conf")),
    (".github/workflows/ci.yml", ("other", ".github/workflows/ci.yml")),
])
def test_classify(path, touch):
    assert rebuild.classify(path) == rebuild.Touch(*touch)
