"""A moved tree rebuilds only the stages it reaches: real doit, the instrumented Catalyst, and a
real local git repository standing in for gentoo.git, moved by one commit at a time."""
import subprocess

import pytest

from gentoo_zfs_livecd.catalyst import grammar
from gentoo_zfs_livecd.rehearsal import emulator
from tests.support.buildgraph import Project
from tests.support.portage_tree import UpstreamWork

EVERY_STAGE = ["stage1", "stage2", "stage3", "installcd-stage1", "iso"]
TARGETS = {"stage1": "stage1", "stage2": "stage2", "stage3": "stage3", "installcd-stage1": "livecd-stage1",
           "iso": "livecd-stage2"}
FIRST_STAMP, MOVED_STAMP = "20260101T000000Z", "20260202T000000Z"
BUILDS = "23.0-zfs"


@pytest.fixture
def project(tmp_path):
    built = Project(tmp_path)
    assert built.build() == ["snapshot", *EVERY_STAGE]
    return built


def spec(project, stage) -> dict:
    path = project.build_dir / "specs" / f"{stage}.spec"
    return grammar.parse(path.read_text(), str(path)).values


def move(project, tmp_path, changes) -> tuple:
    """(old commit, new commit, doit's output, Catalyst runs) after pinning a commit with `changes`."""
    old = project.sha
    new = UpstreamWork(project.upstream, tmp_path / "gentoo-work").commit(changes, "2026-02-02T00:00:00Z")
    project.configure(snapshot={"treeish": new})
    done = project.doit(check=True)
    return old, new, done.stdout, project.calls()


def assert_stages_follow(project, rebuilt, old, new):
    """Each stage's spec names the commit and stamp it is built from, and starts from the
    artifact the stage before it really has."""
    builds = project.store / "builds"
    for index, stage in enumerate(EVERY_STAGE):
        values = spec(project, stage)
        commit, stamp = (new, MOVED_STAMP) if stage in rebuilt else (old, FIRST_STAMP)
        assert (values["snapshot_treeish"], values["version_stamp"]) == (commit, stamp), stage
        assert (builds / BUILDS / f"{TARGETS[stage]}-amd64-{stamp}.tar.xz").is_file(), stage
        if index:
            before = EVERY_STAGE[index - 1]
            before_stamp = MOVED_STAMP if before in rebuilt else FIRST_STAMP
            assert values["source_subpath"] == f"{BUILDS}/{TARGETS[before]}-amd64-{before_stamp}", stage
            assert (builds / f"{values['source_subpath']}.tar.xz").is_file()
    iso_stamp = MOVED_STAMP if "iso" in rebuilt else FIRST_STAMP
    assert (builds / BUILDS / f"install-amd64-zfs-{iso_stamp}.iso").is_file()


def edited(name: str) -> dict:
    return {name: "# changed\n"}


CASES = {
    "a package no stage holds": ({"app-misc/unheld/unheld-1.0.ebuild": 'KEYWORDS="amd64"\n'}, []),
    "sys-fs/zfs-kmod": (edited("sys-fs/zfs-kmod/zfs-kmod-2.3.4.ebuild"), ["iso"]),
    "app-misc/screen": (edited("app-misc/screen/screen-4.9.1-r1.ebuild"), ["installcd-stage1", "iso"]),
    "a system package": (edited("sys-libs/glibc/glibc-2.41-r5.ebuild"), EVERY_STAGE),
    "an eclass of a system package": (edited("eclass/toolchain-funcs.eclass"), EVERY_STAGE),
    "a mask of an unrelated package": ({"profiles/package.mask": ">=dev-lang/example-2\n"}, []),
    "a mask of a held package": ({"profiles/package.mask": ">=app-misc/screen-5\n"}, ["installcd-stage1", "iso"]),
    "the profile's make.defaults": (edited("profiles/default/linux/amd64/23.0/make.defaults"), EVERY_STAGE),
}


def test_the_cases_touch_the_emulated_tree():
    """Every edited file exists in the tree the emulator builds from (the new package does not)."""
    for name, (changes, _) in CASES.items():
        for path in changes:
            assert (path in emulator.EBUILDS) == (name != "a package no stage holds"), path


@pytest.mark.parametrize("case", CASES)
def test_a_moved_tree_rebuilds_the_stages_it_reaches(project, tmp_path, case):
    changes, rebuilt = CASES[case]
    old, new, output, calls = move(project, tmp_path, changes)
    # Catalyst's squashfs of the new commit is made only for a stage built from it.
    assert calls == (["snapshot", *rebuilt] if rebuilt else [])
    assert (project.store / "snapshots" / f"gentoo-{new}.sqfs").is_file() == bool(rebuilt)
    for stage in EVERY_STAGE:
        verdict = "rebuild" if stage in rebuilt else "kept"
        assert f"   {stage}: {verdict} (" in output, output
    assert_stages_follow(project, rebuilt, old, new)
    assert project.build() == []


def test_decision_lines_name_the_reason(project, tmp_path):
    old, new, output, _ = move(project, tmp_path, edited("sys-fs/zfs-kmod/zfs-kmod-2.3.4.ebuild"))
    assert "   iso: rebuild (sys-fs/zfs-kmod changed)" in output
    assert (f"   installcd-stage1: kept (built from {old[:7]}; none of its 3 packages, 3 eclasses or its "
            f"profile changed in {old[:7]}..{new[:7]})") in output


def test_always_rebuilds_every_stage(project, tmp_path):
    project.configure(snapshot={"rebuild": "always"})
    _, _, output, calls = move(project, tmp_path, {"app-misc/unheld/unheld-1.0.ebuild": 'KEYWORDS="amd64"\n'})
    assert calls == ["snapshot", *EVERY_STAGE]
    assert "snapshot.rebuild: always" in output


def test_a_kept_stage_rebuilds_when_its_own_inputs_change(project, tmp_path):
    old, new, _, calls = move(project, tmp_path, edited("sys-fs/zfs-kmod/zfs-kmod-2.3.4.ebuild"))
    assert calls == ["snapshot", "iso"]
    with open(project.root / "specs" / "installcd-stage1.spec.j2", "a") as template:
        template.write("\ncompression_mode: xz\n")
    assert project.build() == ["installcd-stage1", "iso"]
    assert spec(project, "installcd-stage1")["snapshot_treeish"] == new
    assert spec(project, "stage3")["snapshot_treeish"] == old


def test_the_commits_stages_are_built_from_stay_reachable(project, tmp_path):
    old, new, _, _ = move(project, tmp_path, edited("sys-fs/zfs-kmod/zfs-kmod-2.3.4.ebuild"))
    bare = project.store / "repos" / "gentoo.git"
    refs = subprocess.run(["git", "--git-dir", str(bare), "for-each-ref", "--format=%(refname)"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert {f"refs/gentoo-zfs-livecd/pins/{old}", f"refs/gentoo-zfs-livecd/pins/{new}"} <= set(refs)


def test_a_week_after_the_last_full_build_a_moved_tree_rebuilds_every_stage(project, tmp_path):
    import json
    record = project.build_dir / "holdings" / "stage1.json"
    data = json.loads(record.read_text())
    data["built"] = "2026-01-01T00:00:00+00:00"
    record.write_text(json.dumps(data))
    assert project.build() == []  # an unchanged tree still runs nothing
    _, _, output, calls = move(project, tmp_path, {"app-misc/unheld/unheld-1.0.ebuild": 'KEYWORDS="amd64"\n'})
    assert calls == ["snapshot", *EVERY_STAGE]
    assert "snapshot.full_rebuild_days: 7" in output


def test_a_failed_rebuild_is_built_again_and_the_kept_stages_stay(project, tmp_path):
    work = UpstreamWork(project.upstream, tmp_path / "gentoo-work")
    project.configure(snapshot={"treeish": work.commit(edited("app-misc/screen/screen-4.9.1-r1.ebuild"),
                                                       "2026-02-02T00:00:00Z")})
    assert project.doit(fault="installcd-stage1:exit2").returncode != 0
    assert project.calls() == ["snapshot", "installcd-stage1"]
    assert project.build() == ["installcd-stage1", "iso"]
    assert spec(project, "stage3")["version_stamp"] == FIRST_STAMP
    assert project.build() == []


def test_a_stage_makes_the_squashfs_of_its_commit_when_it_is_missing(project, capsys):
    """The emulator refuses a spec whose snapshot squashfs is missing, as Catalyst does (it cannot
    mount it); the stage task makes that squashfs again before it runs Catalyst."""
    sqfs = project.store / "snapshots" / f"gentoo-{project.sha}.sqfs"
    sqfs.unlink()
    conf = next(project.build_dir.rglob("catalyst.conf"))
    assert emulator.main(["-c", str(conf), "-f", str(project.build_dir / "specs" / "iso.spec")]) != 0
    assert f"Couldn't mount: {sqfs}" in capsys.readouterr().out
    (project.store / "builds" / BUILDS / f"install-amd64-zfs-{FIRST_STAMP}.iso").unlink()
    assert project.build() == ["snapshot", "iso"]
    assert sqfs.is_file()
