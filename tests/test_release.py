"""Atomic publishing: staging, latest-iso.txt, current, retention, and a SIGKILL mid-publish."""
import email.utils
import fcntl
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.release import publishing
from tests.support import CHECKOUT, require

ISO = "install-amd64-zfs.iso"


def make_release_files(directory: Path, content: bytes = b"iso data"):
    directory.mkdir(parents=True, exist_ok=True)
    iso = directory / ISO
    iso.write_bytes(content)
    for suffix in (".DIGESTS", ".sha256", ".asc"):
        (directory / (ISO + suffix)).write_text(f"{suffix} of {len(content)}\n")
    build_info = directory / "build-info.json"
    build_info.write_text('{"kernel_release": "6.12.41-gentoo-dist"}\n')
    return publishing.release_files(iso, build_info)


def visible(publish_dir: Path):
    return sorted(p.name for p in publish_dir.iterdir() if not p.name.startswith("."))


def test_publish_layout(tmp_path):
    sources = make_release_files(tmp_path / "build")
    publish_dir = tmp_path / "pub"
    final = publishing.publish(sources, publish_dir, "20260101T000000Z", keep=3, now=1767225600)
    assert final == publish_dir / "20260101T000000Z"
    assert sorted(p.name for p in final.iterdir()) == sorted(s.name for s in sources)
    assert (final / ISO).stat().st_ino == sources[0].stat().st_ino  # same file system: hard link
    assert os.readlink(publish_dir / "current") == "20260101T000000Z"
    assert (publish_dir / "latest-iso.txt").read_text() == (
        "# Latest as of Thu, 01 Jan 2026 00:00:00 +0000\n# ts=1767225600\n"
        f"20260101T000000Z/{ISO} 8\n")
    assert visible(publish_dir) == ["20260101T000000Z", "current", "latest-iso.txt"]


def test_latest_date_is_rfc2822_utc(tmp_path):
    sources = make_release_files(tmp_path / "build")
    publishing.publish(sources, tmp_path / "pub", "r1", keep=1)
    first, second, entry = (tmp_path / "pub" / "latest-iso.txt").read_text().splitlines()
    stamp = email.utils.parsedate_to_datetime(first.removeprefix("# Latest as of "))
    assert first.endswith(" +0000")
    assert int(second.removeprefix("# ts=")) == int(stamp.timestamp())
    assert abs(stamp.timestamp() - time.time()) < 60
    assert entry == f"r1/{ISO} 8"


def test_staging_leftovers_are_removed(tmp_path):
    publish_dir = tmp_path / "pub"
    leftover = publish_dir / ".staging-20251231T000000Z.999"
    leftover.mkdir(parents=True)
    (leftover / ISO).write_bytes(b"partial")
    (publish_dir / ".staging-remove-old.1").write_text("x")
    publishing.publish(make_release_files(tmp_path / "build"), publish_dir, "r1", keep=1)
    assert not [p for p in publish_dir.iterdir() if p.name.startswith(".staging-")]


def test_retention_keeps_newest_and_current(tmp_path):
    publish_dir = tmp_path / "pub"
    for day in (1, 2, 3, 4):
        sources = make_release_files(tmp_path / f"build{day}", b"x" * day)
        publishing.publish(sources, publish_dir, f"2026010{day}", keep=2)
    assert visible(publish_dir) == ["20260103", "20260104", "current", "latest-iso.txt"]
    # An older name becomes current: it stays although it is not among the newest by name.
    sources = make_release_files(tmp_path / "build0", b"rebuild")
    publishing.publish(sources, publish_dir, "20251231", keep=1)
    assert os.readlink(publish_dir / "current") == "20251231"
    assert visible(publish_dir) == ["20251231", "20260104", "current", "latest-iso.txt"]
    assert (publish_dir / "latest-iso.txt").read_text().endswith(f"20251231/{ISO} 7\n")


def test_directories_with_subdirectories_are_not_pruned(tmp_path):
    publish_dir = tmp_path / "pub"
    (publish_dir / "mirror-tools" / "bin").mkdir(parents=True)
    for name in ("r1", "r2"):
        publishing.publish(make_release_files(tmp_path / name, name.encode()), publish_dir, name, keep=1)
    assert visible(publish_dir) == ["current", "latest-iso.txt", "mirror-tools", "r2"]


def test_same_release_twice(tmp_path):
    publish_dir = tmp_path / "pub"
    sources = make_release_files(tmp_path / "build")
    publishing.publish(sources, publish_dir, "r1", keep=2)
    (publish_dir / "current").unlink()  # as if killed after the rename, before the pointers
    publishing.publish(sources, publish_dir, "r1", keep=2)
    assert os.readlink(publish_dir / "current") == "r1"
    changed = make_release_files(tmp_path / "other", b"different iso")
    with pytest.raises(UserError, match="already published with different files"):
        publishing.publish(changed, publish_dir, "r1", keep=2)
    assert (publish_dir / "r1" / ISO).read_bytes() == b"iso data"


def test_bad_arguments(tmp_path):
    sources = make_release_files(tmp_path / "build")
    publish_dir = tmp_path / "pub"
    for name in ("", ".hidden", "a/b", "current"):
        with pytest.raises(UserError, match="release name"):
            publishing.publish(sources, publish_dir, name, keep=1)
    with pytest.raises(UserError, match="keep"):
        publishing.publish(sources, publish_dir, "r1", keep=0)
    with pytest.raises(UserError, match="no such file"):
        publishing.publish([tmp_path / "missing.iso"], publish_dir, "r1", keep=1)
    with pytest.raises(UserError, match="iso_name"):
        publishing.publish(sources, publish_dir, "r1", keep=1, iso_name="other.iso")
    assert not (publish_dir / "r1").exists()


def test_concurrent_publish_is_refused(tmp_path):
    publish_dir = tmp_path / "pub"
    publish_dir.mkdir()
    with open(publish_dir / publishing.LOCK_NAME, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(UserError, match="another publish is running"):
            publishing.publish(make_release_files(tmp_path / "build"), publish_dir, "r1", keep=1)
    assert not (publish_dir / "r1").exists()


def other_filesystem_dir(tmp_path):
    """A temporary directory on another file system than tmp_path (tmpfs), or None."""
    for candidate in ("/dev/shm", "/run"):
        if os.path.isdir(candidate) and os.access(candidate, os.W_OK) and \
                os.stat(candidate).st_dev != os.stat(tmp_path).st_dev:
            return Path(tempfile.mkdtemp(prefix="publish-test-", dir=candidate))
    return None


def test_copy_across_file_systems(tmp_path):
    source_dir = other_filesystem_dir(tmp_path)
    require(source_dir, "no second file system to copy from", "mount a tmpfs on /dev/shm or /run")
    try:
        sources = make_release_files(source_dir / "build", b"copied")
        final = publishing.publish(sources, tmp_path / "pub", "r1", keep=1)
        assert (final / ISO).read_bytes() == b"copied"
        assert (final / ISO).stat().st_ino != sources[0].stat().st_ino
        assert (final / ISO).stat().st_mtime == sources[0].stat().st_mtime  # copy2 keeps it
    finally:
        subprocess.run(["rm", "-rf", str(source_dir)], check=True)


def test_sigkill_during_publish_leaves_previous_release_intact(tmp_path):
    source_dir = other_filesystem_dir(tmp_path)
    require(source_dir, "no second file system to copy from, so no copy to interrupt",
            "mount a tmpfs on /dev/shm or /run")
    publish_dir = tmp_path / "pub"
    try:
        publishing.publish(make_release_files(tmp_path / "old"), publish_dir, "r1", keep=5)
        latest_before = (publish_dir / "latest-iso.txt").read_text()
        old_files = sorted(p.name for p in (publish_dir / "r1").iterdir())

        big = make_release_files(source_dir / "build")
        size = 512 * 1024 * 1024
        os.truncate(big[0], size)  # sparse on tmpfs: costs no memory, but the copy writes it all
        script = ("import sys; from gentoo_zfs_livecd.release.publishing import publish; "
                  "publish(sys.argv[2:], sys.argv[1], 'r2', keep=5)")
        child = subprocess.Popen([sys.executable, "-c", script, str(publish_dir), *map(str, big)],
                                 cwd=CHECKOUT, env=dict(os.environ, PYTHONPATH=str(CHECKOUT)))
        deadline = time.monotonic() + 60
        copying = None
        while child.poll() is None and time.monotonic() < deadline:
            partial = list(publish_dir.glob(f".staging-r2.*/*{ISO}*"))  # under its temporary name
            if partial and 0 < partial[0].stat().st_size < size:
                copying = partial[0].stat().st_size
                break
            time.sleep(0.001)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert copying is not None, "publish finished before it could be killed mid-copy"
        assert child.returncode == -signal.SIGKILL

        assert visible(publish_dir) == ["current", "latest-iso.txt", "r1"]
        assert os.readlink(publish_dir / "current") == "r1"
        assert (publish_dir / "latest-iso.txt").read_text() == latest_before
        assert sorted(p.name for p in (publish_dir / "r1").iterdir()) == old_files
        assert (publish_dir / "r1" / ISO).read_bytes() == b"iso data"
        assert list(publish_dir.glob(".staging-r2.*"))  # the partial copy stayed hidden

        # The next run clears the leftover and publishes normally.
        publishing.publish(make_release_files(tmp_path / "new", b"new iso"), publish_dir, "r2", keep=5)
        assert not list(publish_dir.glob(".staging-*"))
        assert os.readlink(publish_dir / "current") == "r2"
        assert re.search(rf"^r2/{ISO} 7$", (publish_dir / "latest-iso.txt").read_text(), re.M)
    finally:
        subprocess.run(["rm", "-rf", str(source_dir)], check=True)
