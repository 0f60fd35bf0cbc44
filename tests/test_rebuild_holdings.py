"""What a built stage holds, read from real tarballs (every compression Catalyst writes) and a
real squashfs, in the same read that hashes the artifact."""
import hashlib
import io
import os
import subprocess
import tarfile

import pytest
import zstandard

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.rebuild import holdings
from gentoo_zfs_livecd.rebuild.holdings import Holdings

PACKAGES = {"sys-apps/baselayout-2.17": (), "sys-libs/glibc-2.41-r5": ("flag-o-matic", "toolchain-funcs"),
            "app-misc/screen-4.9.1-r1": ("flag-o-matic", "pam")}


def stage_root(tmp_path):
    """A stage's root: var/db/pkg as Portage writes it (a package without eclasses has no
    INHERITED), an entry being merged, and several MiB of other files around it."""
    root = tmp_path / "root"
    for cpv, eclasses in PACKAGES.items():
        entry = root / "var/db/pkg" / cpv
        entry.mkdir(parents=True)
        (entry / "SLOT").write_text("0\n")
        if eclasses:
            (entry / "INHERITED").write_text(" ".join(reversed(eclasses)) + "\n")
    merging = root / "var/db/pkg/sys-apps/-MERGING-coreutils-9.5"
    merging.mkdir(parents=True)
    (merging / "INHERITED").write_text("unused\n")
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (root / "var/db/pkg/sys-apps/metadata.xml").write_text("not a package\n")
    return root


def tarball(root, path):
    """Like Catalyst: `tar -C root .`, members named `./...`; zstd in two frames."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as out:
        out.add(root, arcname=".")
    data = buffer.getvalue()
    if path.name.endswith(".zst"):
        half = len(data) // 2
        compressor = zstandard.ZstdCompressor()
        path.write_bytes(compressor.compress(data[:half]) + compressor.compress(data[half:]))
        return path
    mode = {"xz": "xz", "bz2": "bz2", "gz": "gz"}[path.name.rsplit(".", 1)[1]]
    with tarfile.open(path, f"w:{mode}") as out:
        out.add(root, arcname=".")
    return path


@pytest.mark.parametrize("extension", ["tar.xz", "tar.bz2", "tar.gz", "tar.zst"])
def test_packages_and_eclasses_read_while_hashing(tmp_path, extension):
    path = tarball(stage_root(tmp_path), tmp_path / f"stage3-amd64-x.{extension}")
    digests, packages = holdings.hash_and_read_tarball(path, ["sha512", "blake2b"], chunk_size=64 * 1024)
    content = path.read_bytes()
    assert digests == {"sha512": hashlib.sha512(content).hexdigest(), "blake2b": hashlib.blake2b(content).hexdigest()}
    assert packages == PACKAGES


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_tarball_is_one_error_and_never_hangs(tmp_path, damage):
    path = tarball(stage_root(tmp_path), tmp_path / "stage1-amd64-x.tar.xz")
    data = path.read_bytes()
    path.write_bytes(os.urandom(len(data)) if damage == "garbage" else data[:len(data) // 2])
    with pytest.raises(UserError, match=r"stage1-amd64-x\.tar\.xz: cannot read its var/db/pkg .*rebuild that stage"):
        holdings.hash_and_read_tarball(path, ["sha512"], chunk_size=64 * 1024)


def test_the_reader_takes_the_hashers_chunks(tmp_path):
    path = tarball(stage_root(tmp_path), tmp_path / "stage3.tar.gz")
    reader = holdings.TarballReader(str(path))
    data = path.read_bytes()
    for start in range(0, len(data), 4096):
        reader.update(data[start:start + 4096])
    assert reader.packages() == PACKAGES


def squashfs(root, path, offset=0):
    image = path.with_suffix(".sqfs")
    subprocess.run(["mksquashfs", str(root), str(image), "-quiet", "-noappend", "-all-root"], check=True,
                   capture_output=True)
    path.write_bytes(b"\0" * offset + image.read_bytes())
    return path


@pytest.mark.parametrize("offset", [0, 32768])
def test_squashfs_packages(tmp_path, offset):
    image = squashfs(stage_root(tmp_path), tmp_path / "live.iso", offset)
    assert holdings.squashfs_packages(image, offset) == PACKAGES


def test_squashfs_that_is_not_one(tmp_path):
    bad = tmp_path / "image.squashfs"
    bad.write_bytes(b"nothing\n" * 100)
    with pytest.raises(UserError, match=r"image\.squashfs: unsquashfs cannot read var/db/pkg .*rebuild the ISO"):
        holdings.squashfs_packages(bad)


def test_what_the_iso_spec_built_and_removed():
    values = {"livecd/unmerge": ["sys-kernel/gentoo-kernel", "sys-devel/gcc", "app-admin/eselect-vi"],
              "boot/kernel": "gentoo", "boot/kernel/gentoo/sources": ">=sys-kernel/gentoo-sources-6.12",
              "boot/kernel/gentoo/packages": ["sys-fs/zfs-kmod", "sys-fs/zfs:0"], "livecd/rm": ["/usr/bin/gcc"]}
    assert holdings.spec_removed_packages(values) == (
        "app-admin/eselect-vi", "sys-devel/gcc", "sys-fs/zfs", "sys-fs/zfs-kmod", "sys-kernel/gentoo-kernel",
        "sys-kernel/gentoo-sources")


def test_packages_and_eclasses_held():
    held = Holdings("default/linux/amd64/23.0", dict(PACKAGES), {"sys-kernel/gentoo-kernel": ("kernel-build",)})
    assert held.cps == {"sys-apps/baselayout", "sys-libs/glibc", "app-misc/screen", "sys-kernel/gentoo-kernel"}
    assert held.eclasses == {"flag-o-matic", "toolchain-funcs", "pam", "kernel-build"}
