"""The spec linter: Catalyst 4's parser exactly, its rejections, and the traps it accepts silently."""
import pytest

from gentoo_zfs_livecd.catalyst import grammar

STAGE3 = """subarch: amd64
target: stage3
version_stamp: 20260101T000000Z
rel_type: 23.0-zfs
profile: default/linux/amd64/23.0
snapshot_treeish: 0123456789abcdef0123456789abcdef01234567
source_subpath: 23.0-zfs/stage1-amd64-20260101T000000Z
compression_mode: pixz
"""


def livecd_stage2(tmp_path, **override):
    (tmp_path / "kernel.config").write_text("CONFIG_DRM=n\n")
    (tmp_path / "confdir").mkdir(exist_ok=True)
    keys = {
        "subarch": "amd64", "target": "livecd-stage2", "version_stamp": "20260101T000000Z",
        "rel_type": "23.0-zfs", "profile": "default/linux/amd64/23.0/no-multilib",
        "snapshot_treeish": "0" * 40, "source_subpath": "23.0-zfs/livecd-stage1-amd64-20260101T000000Z",
        "portage_confdir": str(tmp_path / "confdir"), "livecd/iso": "install.iso",
        "livecd/volid": "Gentoo-ZFS-20260101", "livecd/type": "gentoo-release-minimal",
        "boot/kernel": "gentoo", "boot/kernel/gentoo/distkernel": "yes",
        "boot/kernel/gentoo/config": str(tmp_path / "kernel.config"),
        "boot/kernel/gentoo/packages": "--usepkg n sys-fs/zfs",
    }
    keys.update(override)
    return "".join(f"{key}: {value}\n" for key, value in keys.items() if value is not None)


def lint(text, check_paths=True):
    return grammar.lint(text, "x.spec", check_paths=check_paths)


def test_a_good_spec_passes(tmp_path):
    assert lint(STAGE3) == []
    assert lint(livecd_stage2(tmp_path)) == []


def test_parser_follows_catalyst():
    spec = grammar.parse('a: "one"\nb: x y\n  z\nc: %(a)s-2\nd: none\ne:\nf: 50%%\n')
    assert spec.values == {"a": "one", "b": ["x", "y", "z"], "c": "one-2", "d": None, "f": "50%"}


@pytest.mark.parametrize("text,fragment", [
    (STAGE3 + "livecd/iso: x.iso\n", 'Argument "livecd/iso" not recognized for target stage3'),
    (STAGE3 + "chost: x86_64-pc-linux-gnu\n", 'Argument "chost" not recognized'),
    (STAGE3.replace("profile: default/linux/amd64/23.0\n", ""), 'Required argument "profile" not specified'),
    (STAGE3 + "portage_prefix: releng # build only\n", "'#' inside a value"),
    (STAGE3.replace("compression_mode: pixz", "compression_mode: 100%"), "%-formats"),
    (STAGE3 + "repos: /a\n\tdev-lang/python:3.12\n", "continuation line contains ':'"),
    (STAGE3.replace("target: stage3", "target : stage3"), "space before ':'"),
    (STAGE3.replace("pixz", "zstd"), "unknown mode 'zstd'"),
    (STAGE3.replace("subarch: amd64", "subarch: pentium9"), "Unknown host machine type pentium9"),
    (STAGE3.replace("source_subpath: 23.0-zfs/stage1-amd64-20260101T000000Z", "source_subpath: a b"),
     "must be a single token"),
])
def test_stage_spec_traps(text, fragment):
    problems = lint(text, check_paths=False)
    assert any(fragment in problem for problem in problems), problems
    assert all(problem.startswith("x.spec:") for problem in problems)


@pytest.mark.parametrize("override,fragment", [
    ({"livecd/volid": "A" * 33}, "must be 1 to 32 of A-Z a-z 0-9 _ . -"),
    ({"livecd/volid": "Gentoo ZFS"}, "must be 1 to 32 of A-Z a-z 0-9 _ . -"),
    ({"livecd/volid": "G\u00e9ntoo"}, "must be 1 to 32 of A-Z a-z 0-9 _ . -"),
    ({"livecd/volid": None}, "livecd/volid: missing"),
    ({"livecd/iso": None}, "livecd/iso: missing"),
    ({"boot/kernel/gentoo/distkernel": "no"}, "write 'yes' or omit it"),
    ({"boot/kernel": "gentoo-dist", "boot/kernel/gentoo/distkernel": None, "boot/kernel/gentoo/config": None,
      "boot/kernel/gentoo/packages": None}, "must use only [A-Za-z0-9_]"),
    ({"boot/kernel/other/packages": "sys-fs/zfs"}, 'Argument "boot/kernel/other/packages" not recognized'),
    ({"livecd/type": "gentoo-release-livecd"}, "livecd/type"),
    ({"livecd/packages": "sys-fs/zfs"}, 'Argument "livecd/packages" not recognized'),
    ({"portage_confdir": "overlay/portage/isos"}, "is relative"),
    ({"portage_confdir": "/nonexistent/confdir"}, "is not a directory"),
    ({"boot/kernel/gentoo/config": "/nonexistent/kernel.config"}, "does not exist"),
    ({"livecd/fsscript": "fsscript.sh"}, "is relative"),
    ({"livecd/root_overlay": "/nonexistent/root"}, "is not a directory"),
    ({"livecd/overlay": "/nonexistent/cd"}, "is not a directory"),
])
def test_livecd_stage2_traps(tmp_path, override, fragment):
    problems = lint(livecd_stage2(tmp_path, **override))
    assert any(fragment in problem for problem in problems), problems


def test_errors_name_file_line_and_key(tmp_path):
    text = livecd_stage2(tmp_path, **{"livecd/volid": "A" * 33})
    line = text.splitlines().index(f"livecd/volid: {'A' * 33}") + 1
    (problem,) = lint(text)
    assert problem.startswith(f"x.spec:{line}: livecd/volid: ")
