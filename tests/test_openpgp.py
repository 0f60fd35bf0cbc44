"""Signature checks with real gpg keys: only the pinned key's good signatures count."""
import subprocess
from pathlib import Path

import pytest

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.inputs import openpgp
from tests.support import gpgtestkeys

TEXT = "# Latest as of Sun, 17 Mar 2024\n- a line that gpg dash-escapes\n20240317T170433Z/stage3.tar.xz 1234\n"
# A key made on this day with a lifetime of one day has been expired ever since.
LONG_AGO = "--faked-system-time=20200101T000000!"


def make_expired_key(home: Path):
    """(primary, signing subkey) made and used long ago, both expired one day later."""
    home.mkdir(mode=0o700)
    uid = "Expired Key <expired@example.org>"
    gpgtestkeys.gpg(home, LONG_AGO, "--quick-gen-key", uid, "ed25519", "cert", "1d")
    primary = gpgtestkeys.fingerprints(home, uid)[0]
    gpgtestkeys.gpg(home, LONG_AGO, "--quick-add-key", primary, "ed25519", "sign", "1d")
    return primary, gpgtestkeys.fingerprints(home, uid)[1]


def revoke(home: Path, primary: str) -> None:
    """Import the revocation certificate gpg wrote when it made `primary`.

    GnuPG 2.2 keeps it in openpgp-revocs.d/ with its armour line disabled by a leading colon,
    so that it is not imported by accident; the colon goes, the certificate is imported.
    """
    certificate = (home / "openpgp-revocs.d" / f"{primary}.rev").read_text()
    gpgtestkeys.gpg(home, "--import", input=certificate.replace(":-----BEGIN", "-----BEGIN").encode())


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
        self.expired_home = root / "expired"
        self.expired_primary, self.expired_subkey = make_expired_key(self.expired_home)
        self.expired_keyring = root / "expired.asc"
        self.expired_keyring.write_bytes(gpgtestkeys.gpg(self.expired_home, "--armor", "--export"))
        self.revoked_home = root / "revoked"
        self.revoked_primary, self.revoked_subkey, _ = gpgtestkeys.make_key(
            self.revoked_home, "Revoked Key", "revoked@example.org")

    def close(self):
        for home in (self.home, self.other_home, self.expired_home, self.revoked_home):
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    made = Keys(tmp_path_factory.mktemp("openpgp"))
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


def test_keys_given_as_bytes(keys):
    signed = gpgtestkeys.clearsign(keys.home, TEXT, keys.subkey)
    assert openpgp.verify_clearsigned(signed, keys.keyring.read_bytes(), keys.primary, "URL") == TEXT


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
    with pytest.raises(UserError, match=f"^URL: the signature cannot be checked \\(made by key {keys.other_subkey}, "
                                        f"which is not in the keyring {keys.keyring}\\)"):
        openpgp.verify_clearsigned(signed, keys.keyring, keys.primary, "URL")


def test_signature_by_another_key_of_the_keyring(keys):
    signed = gpgtestkeys.clearsign(keys.other_home, TEXT, keys.other_subkey)
    with pytest.raises(UserError, match=f"signed by key {keys.other_subkey} .*not by the pinned key {keys.primary}"):
        openpgp.verify_clearsigned(signed, keys.both, keys.primary, "URL")


def test_signature_by_an_expired_key_names_it_and_says_what_to_do(keys):
    signed = gpgtestkeys.gpg(keys.expired_home, "--faked-system-time=20200101T010000!", "--local-user",
                             keys.expired_subkey, "--clearsign", input=TEXT.encode())
    with pytest.raises(UserError) as raised:
        openpgp.verify_clearsigned(signed, keys.expired_keyring, keys.expired_primary, "URL")
    assert str(raised.value) == (f"URL: signed by key {keys.expired_primary} (Expired Key <expired@example.org>), "
                                 f"which has expired: update the keyring {keys.expired_keyring} (an updated key "
                                 "file carries the new expiry date) or pin the key that replaced it")


def test_signature_by_a_revoked_key_names_it_and_says_what_to_do(keys, tmp_path):
    signed = gpgtestkeys.clearsign(keys.revoked_home, TEXT, keys.revoked_subkey)
    revoke(keys.revoked_home, keys.revoked_primary)
    keyring = tmp_path / "revoked.asc"
    keyring.write_bytes(gpgtestkeys.gpg(keys.revoked_home, "--armor", "--export", keys.revoked_primary))
    with pytest.raises(UserError) as raised:
        openpgp.verify_clearsigned(signed, keyring, keys.revoked_primary, "URL")
    assert str(raised.value) == (f"URL: signed by key {keys.revoked_primary} (Revoked Key <revoked@example.org>), "
                                 "which has been revoked: do not use this data; pin the key that replaced it")


def test_missing_keyring(keys, tmp_path):
    with pytest.raises(UserError, match=f"keyring {tmp_path}/none.asc does not exist"):
        openpgp.verify_clearsigned(TEXT, tmp_path / "none.asc", keys.primary, "URL")


def test_keyring_without_the_pinned_key(keys):
    with pytest.raises(UserError, match=f"other.asc does not contain the pinned key {keys.primary}"):
        openpgp.verify_clearsigned(TEXT, keys.other_only, keys.primary, "URL")
    with pytest.raises(UserError, match=f"other.asc does not contain the pinned key {keys.primary}"):
        openpgp.check_pinned_key(keys.other_only, keys.primary)


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
    with pytest.raises(UserError, match="file to verify does not exist"):
        openpgp.verify_detached(tmp_path / "none.iso", signature, keys.keyring, keys.primary)


def test_signer_checks_what_it_signs(keys, tmp_path):
    signer = openpgp.Signer(keys.subkey, keys.home)
    signed = signer.clearsign(TEXT, "DIGESTS")
    assert openpgp.verify_clearsigned(signed, keys.keyring, keys.primary, "DIGESTS") == TEXT
    data = tmp_path / "install.iso"
    data.write_bytes(b"iso image")
    openpgp.verify_detached(data, signer.detach_sign(data, "install.iso.asc"), keys.keyring, keys.primary)


def test_signer_with_an_unknown_key_or_home(keys, tmp_path):
    with pytest.raises(UserError, match=f"^GnuPG key nobody@example.org not found in {keys.home}; import it"):
        openpgp.Signer("nobody@example.org", keys.home)
    with pytest.raises(UserError, match=f"^GnuPG home {tmp_path}/none does not exist"):
        openpgp.Signer(keys.primary, tmp_path / "none")
    assert not (tmp_path / "none").exists()
