"""A built stage's record: its targets' digests and what it holds, from one read of its tarball."""
import hashlib

import pytest

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.rebuild import record
from gentoo_zfs_livecd.rehearsal import emulator

PACKAGES = {"sys-libs/glibc-2.41-r5": ("flag-o-matic", "toolchain-funcs"), "sys-apps/baselayout-2.17": ()}


def test_digests_and_holdings_of_a_stage_tarball(tmp_path, monkeypatch):
    spec = tmp_path / "stage3.spec"
    spec.write_text("target: stage3\nprofile: default/linux/amd64/23.0\n")
    tarball = tmp_path / "stage3-amd64-x.tar.xz"
    emulator.write_tarball(tarball, spec.read_text(), PACKAGES)
    contents = tarball.with_name(tarball.name + ".CONTENTS.gz")
    opened = []
    real_open = open

    def counting_open(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    digests = record.hash_and_record("stage3", [str(tarball), str(contents)], str(spec), {
        "file": str(tmp_path / "holdings.json"), "snapshot": "a" * 40, "inputs": "sig", "bare_repo": None,
        "tarball": str(tarball), "iso": None})
    monkeypatch.undo()
    assert opened.count(str(tarball)) == 1
    assert digests == {str(p): hashlib.sha512(p.read_bytes()).hexdigest() for p in (tarball, contents)}
    stored = record.read_record(tmp_path / "holdings.json")
    assert (stored["snapshot"], stored["inputs"]) == ("a" * 40, "sig")
    assert stored["holdings"].profile == "default/linux/amd64/23.0"
    assert stored["holdings"].packages == PACKAGES


def test_a_record_of_an_older_format_is_no_record(tmp_path):
    path = tmp_path / "holdings.json"
    path.write_text('{"format": 1, "stage": "stage1", "snapshot": "a", "profile": "p", "packages": {}, "removed": {}}')
    assert record.read_record(path) is None
    assert record.read_record(tmp_path / "missing.json") is None


def test_a_damaged_record_is_one_line_saying_what_to_do(tmp_path):
    path = tmp_path / "holdings" / "iso.json"
    path.parent.mkdir()
    path.write_text("{")
    with pytest.raises(UserError, match="iso.json: not valid JSON; delete it, the next build of that stage"):
        record.read_record(path)
