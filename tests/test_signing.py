"""DIGESTS/sha256 sidecars against coreutils, and signing with real GnuPG keys."""
import gzip
import os
import shutil
import subprocess

import pytest

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.inputs import openpgp
from gentoo_zfs_livecd.release import digestfile, sidecars
from tests.support import gpgtestkeys

COREUTILS = {"blake2b": "b2sum", "sha512": "sha512sum", "md5": "md5sum", "sha1": "sha1sum",
             "sha256": "sha256sum"}


def coreutils(tool, path):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")
    return subprocess.run([tool, str(path)], check=True, capture_output=True, text=True).stdout.split()[0]


@pytest.fixture
def artifact(tmp_path):
    iso = tmp_path / "install-amd64-zfs-20260101T000000Z.iso"
    iso.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (tmp_path / (iso.name + ".CONTENTS.gz")).write_bytes(gzip.compress(b"boot/gentoo\nimage.squashfs\n"))
    return iso


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    home = tmp_path_factory.mktemp("gnupg")
    primary, subkey, _public = gpgtestkeys.make_key(home)
    other, _sub, _pub = gpgtestkeys.make_key(home, name="Someone Else", email="else@example.org")
    yield home, primary, subkey, other
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)


def test_digests_match_coreutils(artifact):
    digests_path, sha256_path = sidecars.write_digests(artifact)
    contents = artifact.with_name(artifact.name + ".CONTENTS.gz")
    parsed = digestfile.parse(digests_path.read_text())
    assert list(parsed) == [artifact.name, contents.name]
    for path in (artifact, contents):
        assert list(parsed[path.name]) == list(sidecars.DEFAULT_ALGORITHMS)
        for algorithm in sidecars.DEFAULT_ALGORITHMS:
            assert parsed[path.name][algorithm] == coreutils(COREUTILS[algorithm], path)
    assert sha256_path.read_text() == f"# SHA256 HASH\n{coreutils('sha256sum', artifact)}  {artifact.name}\n"


def test_digests_layout_is_gentoos(artifact):
    digests_path, _ = sidecars.write_digests(artifact, ["blake2b", "sha512"])
    lines = digests_path.read_text().splitlines()
    assert lines[0::2] == ["# BLAKE2B HASH", "# SHA512 HASH"] * 2
    assert all(line.endswith(f"  {artifact.name}") for line in lines[1:4:2])
    assert all(line.endswith(".CONTENTS.gz") for line in lines[5::2])


def test_digests_without_contents_file(tmp_path):
    iso = tmp_path / "x.iso"
    iso.write_bytes(b"data")
    digests_path, _ = sidecars.write_digests(iso, ["md5"])
    assert digests_path.read_text() == f"# MD5 HASH\n{coreutils('md5sum', iso)}  x.iso\n"
    # sha256sum itself accepts the sidecar (the header line is a comment it skips).
    check = subprocess.run(["sha256sum", "-c", "x.iso.sha256"], cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0 and "x.iso: OK" in check.stdout


def test_unknown_algorithm_and_missing_artifact(tmp_path):
    iso = tmp_path / "x.iso"
    iso.write_bytes(b"data")
    with pytest.raises(UserError, match="unknown digest algorithm"):
        sidecars.write_digests(iso, ["sha512", "whirlpool-9"])
    with pytest.raises(UserError, match="no such file"):
        sidecars.write_digests(tmp_path / "missing.iso")
    assert not (tmp_path / "x.iso.DIGESTS").exists()


def public_key(home, primary) -> bytes:
    return gpgtestkeys.gpg(home, "--armor", "--export", primary)


def test_sign_release_and_verify_with_gpg(artifact, keys):
    home, primary, subkey, _other = keys
    sidecars.write_digests(artifact)
    plain = artifact.with_name(artifact.name + ".DIGESTS").read_text()
    written = sidecars.sign_release(artifact, primary, home)
    digests_path, sha256_path, asc = written
    assert asc.name == artifact.name + ".asc"
    assert digests_path.read_text().startswith("-----BEGIN PGP SIGNED MESSAGE-----\n")
    assert asc.read_text().startswith("-----BEGIN PGP SIGNATURE-----")
    # gpg on its own accepts what was written, as users verify it (Handbook).
    for argv in (["--verify", str(asc), str(artifact)], ["--verify", str(digests_path)],
                 ["--verify", str(sha256_path)]):
        status = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--status-fd", "1", *argv],
                                capture_output=True, text=True)
        assert status.returncode == 0 and f"VALIDSIG {subkey}" in status.stdout
    keyring = public_key(home, primary)
    assert openpgp.verify_clearsigned(digests_path.read_bytes(), keyring, primary, digests_path) == plain
    openpgp.verify_detached(artifact, asc.read_bytes(), keyring, primary)


@pytest.mark.parametrize("key", ["subkey", "releng@example.org"])
def test_sign_release_with_a_subkey_or_user_id(artifact, keys, key):
    home, primary, subkey, _other = keys
    sidecars.write_digests(artifact)
    asc = sidecars.sign_release(artifact, subkey if key == "subkey" else key, home)[2]
    openpgp.verify_detached(artifact, asc.read_bytes(), public_key(home, primary), primary)


def test_tampered_artifact_fails_verification(artifact, keys):
    home, primary, _subkey, _other = keys
    sidecars.write_digests(artifact)
    asc = sidecars.sign_release(artifact, primary, home)[2]
    with open(artifact, "r+b") as stream:
        stream.seek(1000)
        stream.write(b"\xff\x00")
    with pytest.raises(UserError, match=f"^{artifact}: the signature is BAD"):
        openpgp.verify_detached(artifact, asc.read_bytes(), public_key(home, primary), primary)


def test_tampered_digests_fail_verification(artifact, keys):
    home, primary, _subkey, _other = keys
    sidecars.write_digests(artifact)
    digests_path = sidecars.sign_release(artifact, primary, home)[0]
    text = digests_path.read_text()
    line = next(l for l in text.splitlines() if l.endswith(artifact.name) and not l.startswith("#"))
    forged = ("0" if line[0] != "0" else "1") + line[1:]
    digests_path.write_text(text.replace(line, forged))
    with pytest.raises(UserError, match=f"^{digests_path}: the signature is BAD"):
        openpgp.verify_clearsigned(digests_path.read_text(), public_key(home, primary), primary, digests_path)


def test_signature_by_another_key_is_refused(artifact, keys):
    home, primary, _subkey, other = keys
    sidecars.write_digests(artifact)
    sidecars.sign_release(artifact, other, home)
    both = public_key(home, primary) + public_key(home, other)
    asc = artifact.with_name(artifact.name + ".asc")
    with pytest.raises(UserError, match=f"primary {other}\\), not by the pinned key {primary}"):
        openpgp.verify_detached(artifact, asc.read_bytes(), both, primary)
    digests_path = artifact.with_name(artifact.name + ".DIGESTS")
    with pytest.raises(UserError, match=f"primary {other}\\), not by the pinned key {primary}"):
        openpgp.verify_clearsigned(digests_path.read_text(), both, primary, digests_path)


def test_signing_twice_is_refused(artifact, keys):
    home, primary, _subkey, _other = keys
    sidecars.write_digests(artifact)
    sidecars.sign_release(artifact, primary, home)
    with pytest.raises(UserError, match="already clearsigned"):
        sidecars.sign_release(artifact, primary, home)


def test_unknown_key(artifact, keys):
    home = keys[0]
    sidecars.write_digests(artifact)
    with pytest.raises(UserError, match="^GnuPG key nobody@example.org not found"):
        sidecars.sign_release(artifact, "nobody@example.org", home)
    assert not artifact.with_name(artifact.name + ".asc").exists()
    assert not artifact.with_name(artifact.name + ".DIGESTS").read_text().startswith("-----BEGIN PGP")
