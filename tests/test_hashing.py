"""One-read multi-algorithm hashing against hashlib and the coreutils tools."""
import hashlib
import os
import shutil
import subprocess

import pytest

from gentoo_zfs_livecd.release.hashing import CHUNK, MultiHasher, hash_file
from tests.support import require

ALGORITHMS = ["md5", "sha1", "sha256", "sha512", "blake2b"]
COREUTILS = {"md5": "md5sum", "sha1": "sha1sum", "sha256": "sha256sum", "sha512": "sha512sum",
             "blake2b": "b2sum"}


def expected(data, algorithms):
    return {name: hashlib.new(name, data).hexdigest() for name in algorithms}


@pytest.mark.parametrize("size", [0, 1, 4095, CHUNK, CHUNK + 1, 3 * CHUNK - 7])
def test_hash_file_matches_hashlib(tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "data"
    path.write_bytes(data)
    assert hash_file(path, ALGORITHMS) == expected(data, ALGORITHMS)


def test_small_chunks_and_deep_queues_give_the_same_digests(tmp_path):
    data = os.urandom(300_001)
    path = tmp_path / "data"
    path.write_bytes(data)
    # 1000-byte chunks: many more chunks than the queues hold, so the reader blocks and resumes.
    assert hash_file(path, ALGORITHMS, chunk_size=1000) == expected(data, ALGORITHMS)


def test_matches_coreutils(tmp_path):
    path = tmp_path / "image.iso"
    path.write_bytes(os.urandom(5 * 1024 * 1024 + 3))
    ours = hash_file(path, ALGORITHMS)
    for algorithm, tool in COREUTILS.items():
        require(shutil.which(tool), f"{tool} is not installed", "apt-get install coreutils")
        out = subprocess.run([tool, str(path)], check=True, capture_output=True, text=True).stdout
        assert ours[algorithm] == out.split()[0], tool


def test_a_reused_buffer_does_not_change_queued_chunks():
    buffer = bytearray(b"a" * 10000)
    hasher = MultiHasher(ALGORITHMS)
    hasher.update(buffer)
    buffer[:] = b"b" * 10000
    hasher.update(buffer)
    assert hasher.hexdigests() == expected(b"a" * 10000 + b"b" * 10000, ALGORITHMS)


def test_single_algorithm_and_repeated_hexdigests():
    hasher = MultiHasher(["sha256"])
    hasher.update(b"abc")
    assert hasher.hexdigests() == hasher.hexdigests() == expected(b"abc", ["sha256"])


def test_duplicate_algorithm_names_are_hashed_once():
    hasher = MultiHasher(["md5", "md5", "sha1"])
    hasher.update(b"xyz")
    assert hasher.hexdigests() == expected(b"xyz", ["md5", "sha1"])


def test_update_after_hexdigests_is_refused():
    hasher = MultiHasher(["md5", "sha1"])
    hasher.update(b"x")
    hasher.hexdigests()
    with pytest.raises(ValueError):
        hasher.update(b"y")


def test_unknown_algorithm():
    with pytest.raises(ValueError):
        MultiHasher(["md5", "no-such-hash"])
