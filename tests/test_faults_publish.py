"""A publish.dir that also holds other things: publish and prune touch only their own releases."""
import pytest

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.release import publishing


def release_files(directory, content: bytes):
    directory.mkdir(parents=True)
    iso = directory / "install-amd64-zfs.iso"
    iso.write_bytes(content)
    (directory / "install-amd64-zfs.iso.sha256").write_text("x\n")
    return publishing.release_files(iso)


def test_folders_of_others_survive_publishing_and_pruning(tmp_path):
    publish_dir = tmp_path / "pub"
    photos, documents = publish_dir / "2019-photos", publish_dir / "Documents"
    photos.mkdir(parents=True)
    (photos / "beach.jpg").write_bytes(b"jpeg")
    documents.mkdir()
    (documents / "letter.txt").write_text("dear\n")
    for number in range(3):
        sources = release_files(tmp_path / f"build{number}", f"iso {number}".encode())
        publishing.publish(sources, publish_dir, f"2026010{number}T000000Z", keep=1)
    assert (photos / "beach.jpg").read_bytes() == b"jpeg"
    assert (documents / "letter.txt").read_text() == "dear\n"
    assert publishing.releases(publish_dir) == ["20260102T000000Z"]
    assert sorted(p.name for p in publish_dir.iterdir() if not p.name.startswith(".")) == sorted([
        "20260102T000000Z", "2019-photos", "Documents", "current", "latest-iso.txt"])


def test_a_folder_of_others_with_a_releases_name_is_refused_in_one_line(tmp_path):
    publish_dir = tmp_path / "pub"
    theirs = publish_dir / "20260101T000000Z"
    theirs.mkdir(parents=True)
    (theirs / "install-amd64-zfs.iso").write_bytes(b"someone else's")
    with pytest.raises(UserError, match="did not publish") as refused:
        publishing.publish(release_files(tmp_path / "build", b"iso"), publish_dir, "20260101T000000Z", keep=1)
    assert "\n" not in str(refused.value)
    assert (theirs / "install-amd64-zfs.iso").read_bytes() == b"someone else's"


def test_a_current_that_is_not_our_symlink_is_refused(tmp_path):
    publish_dir = tmp_path / "pub"
    (publish_dir / "current").mkdir(parents=True)
    with pytest.raises(UserError, match="not the symlink"):
        publishing.publish(release_files(tmp_path / "build", b"iso"), publish_dir, "r1", keep=1)
    assert (publish_dir / "current").is_dir()
