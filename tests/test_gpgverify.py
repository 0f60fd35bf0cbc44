"""Signature checks with real gpg keys: only the pinned key's good signatures count."""
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import gpgtestkeys  # noqa: E402

from gentoo_zfs_livecd.errors import UserError  # noqa: E402
from gentoo_zfs_livecd.inputs import openpgp

TEXT = "# Latest as of Sun, 17 Mar 2024\n- a line that gpg dash-escapes\n20240317T170433Z/stage3.tar.xz 1234\n"


class Keys:
    def __init__(self, root: Path):
        self.home, self.other_home = root / "signer", root / "other"
        self.primary, self.subkey, public = gpgtestkeys.make_key(self.home)
        self.other_primary, self.other_subkey, other_public = gpgtestkeys.make_key(
            self.other_home, "Other Key", "other@example.org")
        self.keyring = root / "release.asc"
        self.keyring.write_bytes(public)
        self.binary_keyring = root / "release.gpg"
        self.binary_keyring.write_bytes(gpgtestkeys.gpg(self.home, "--export", self.primary))
        self.both = root / "both.asc"
        self.both.write_bytes(public + other_public)
        self.other_only = root / "other.asc"
        self.other_only.write_bytes(other_public)

    def close(self):
        for home in (self.home, self.other_home):
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    made = Keys(tmp_path_factory.mktemp("gpgverify"))
    yield made
    made.close()


def test_returns_only_the_signed_text(keys):
    signed = gpgtestkeys.clearsign(keys.home, TEXT, keys.subkey)
    document = "99999999T000000Z/evil.tar.xz 1\n" + signed + "99999999T000000Z/evil.tar.xz 1\n"
    assert openpgp.verify_clearsigned(document, keys.keyring, keys.primary, "URL") == TEXT


def test_binary_keyring_and_spaced_fingerprint(keys):
    signed = gpgtestkeys.clearsign(keys.home, TEXT, keys.subkey).encode()
    spaced = "0x" + " ".join(keys.primary[i:i + 4] for i in range(0, 40, 4)).lower()
    assert openpgp.verify_clearsigned(signed, keys.binary_keyring, spaced, "URL") == TEXT


@pytest.mark.parametrize("fingerprint", ["", "BB572E0E2D182910", "not hex at all"])
def test_short_or_bad_fingerprint_is_refused(keys, fingerprint):
    with pytest.raises(UserError, match="not a full 40- or 64-digit fingerprint"):
        openpgp.verify_clearsigned("x", keys.keyring, fingerprint, "URL")


def test_altered_text(keys):
    signed = gpgtestkeys.clearsign(keys.home, TEXT, keys.subkey)
    with pytest.raises(UserError, match="^URL: the signature is BAD"):
        openpgp.verify_clearsigned(signed.replace("1234", "1235"), keys.keyring, keys.primary, "URL")


def test_unsigned_text(keys):
    with pytest.raises(UserError, match="^URL: not signed"):
        openpgp.verify_clearsigned(TEXT, keys.keyring, keys.primary, "URL")


def test_signature_by_a_key_not_in_the_keyring(keys):
    signed = gpgtestkeys.clearsign(keys.other_home, TEXT, keys.other_subkey)
    with pytest.raises(UserError, match="^URL: the signature cannot be checked"):
        openpgp.verify_clearsigned(signed, keys.keyring, keys.primary, "URL")


def test_signature_by_another_key_of_the_keyring(keys):
    signed = gpgtestkeys.clearsign(keys.other_home, TEXT, keys.other_subkey)
    with pytest.raises(UserError, match=f"signed by key {keys.other_subkey} .*not by the pinned key {keys.primary}"):
        openpgp.verify_clearsigned(signed, keys.both, keys.primary, "URL")


def test_missing_keyring(keys, tmp_path):
    with pytest.raises(UserError, match=f"keyring {tmp_path}/none.asc does not exist"):
        openpgp.verify_clearsigned(TEXT, tmp_path / "none.asc", keys.primary, "URL")


def test_keyring_without_the_pinned_key(keys):
    with pytest.raises(UserError, match=f"other.asc does not contain the pinned key {keys.primary}"):
        openpgp.verify_clearsigned(TEXT, keys.other_only, keys.primary, "URL")


def test_detached_signature(keys, tmp_path):
    data = tmp_path / "install.iso"
    data.write_bytes(b"iso image" * 1000)
    signature = gpgtestkeys.detach_sign(keys.home, data.read_bytes(), keys.subkey)
    openpgp.verify_detached(data, signature, keys.keyring, keys.primary)
    data.write_bytes(b"iso imagE" * 1000)
    with pytest.raises(UserError, match=f"^{data}: the signature is BAD"):
        openpgp.verify_detached(data, signature, keys.keyring, keys.primary)
    with pytest.raises(UserError, match="not signed"):
        openpgp.verify_detached(data, b"garbage", keys.keyring, keys.primary)
