"""The emulated stages hold a realistic var/db/pkg, read back the way real stages are."""
import subprocess

from gentoo_zfs_livecd.rebuild.holdings import hash_and_read_tarball
from gentoo_zfs_livecd.rehearsal import emulator


def snapshot(tmp_path):
    tree = tmp_path / "tree"
    for name, text in emulator.EBUILDS.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    sqfs = tmp_path / "gentoo.sqfs"
    subprocess.run(["mksquashfs", str(tree), str(sqfs), "-quiet", "-noappend", "-all-root"], check=True)
    return emulator.tree_packages(sqfs)


SYSTEM = {"sys-apps/baselayout-2.17": (), "sys-libs/glibc-2.41-r5": ("toolchain-funcs", "flag-o-matic")}


def test_each_target_holds_its_packages(tmp_path):
    tree = snapshot(tmp_path)
    assert tree["sys-kernel/gentoo-kernel"][0] == "gentoo-kernel-6.12.41"  # the ~amd64 6.18.2 is not stable
    assert emulator.installed_packages({"target": "stage3"}, tree) == SYSTEM
    cd = {"target": "livecd-stage1", "livecd/packages": ["app-misc/screen", "app-editors/absent"]}
    assert emulator.installed_packages(cd, tree) == {**SYSTEM, "app-misc/screen-4.9.1-r1": ("flag-o-matic", "pam")}
    iso = {"target": "livecd-stage2", "boot/kernel/gentoo/distkernel": "yes",
           "boot/kernel/gentoo/packages": ["--usepkg", "n", "sys-fs/zfs", "sys-fs/zfs-kmod"]}
    assert emulator.installed_packages(iso, tree) == {
        **SYSTEM, "sys-fs/zfs-2.3.4": (), "sys-fs/zfs-kmod-2.3.4": ("linux-mod-r1",),
        "sys-kernel/gentoo-kernel-6.12.41": ()}


def test_the_tarball_is_read_back_as_catalysts_are(tmp_path):
    packages = emulator.installed_packages({"target": "stage1"}, snapshot(tmp_path))
    tarball = tmp_path / "stage1-amd64-x.tar.xz"
    emulator.write_tarball(tarball, "target: stage1\n", packages)
    assert hash_and_read_tarball(tarball, ["sha512"])[1] == {
        "sys-apps/baselayout-2.17": (), "sys-libs/glibc-2.41-r5": ("flag-o-matic", "toolchain-funcs")}


def test_the_run_history_keeps_the_decisions_and_the_report_shows_them(tmp_path):
    from gentoo_zfs_livecd.nightly import history, report
    lines = ["stage1: kept (built from 1a2b3c4; none of its 2 packages, 2 eclasses or its profile changed "
             "in 1a2b3c4..9f8e7d6)", "iso: rebuild (sys-fs/zfs-kmod changed)"]
    record = history.RunRecord(start="2026-01-02T02:00:00+00:00", end="2026-01-02T02:10:00+00:00",
                               outcome="succeeded", decisions=lines)
    history.append(tmp_path / "history.jsonl", record)
    assert history.load(tmp_path / "history.jsonl")[0].decisions == lines
    page = report.render_page(history.load(tmp_path / "history.jsonl"))
    assert "<code>iso: rebuild (sys-fs/zfs-kmod changed)</code>" in page
