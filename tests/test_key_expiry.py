"""The nightly warns some weeks before a pinned signing key stops signing (Gentoo renews its keys)."""
import subprocess
import time
from pathlib import Path

import pytest

from gentoo_zfs_livecd.inputs import openpgp
from tasks.doit_glue import nightly
from tests.support.gpgtestkeys import fingerprints, gpg


def key_with_signing_subkey(home: Path, expires: str) -> tuple[str, Path]:
    """A certify-only primary key (never expires) whose signing subkey expires `expires`."""
    home.mkdir(mode=0o700)
    uid = "Expiring Key <releng@example.org>"
    gpg(home, "--quick-gen-key", uid, "ed25519", "cert", "never")
    primary = fingerprints(home, uid)[0]
    gpg(home, "--quick-add-key", primary, "ed25519", "sign", expires)
    keyring = home.parent / f"{home.name}.asc"
    keyring.write_bytes(gpg(home, "--armor", "--export", primary))
    return primary, keyring


class Build:
    """The settings `expiring_keys` reads, as a build gives them."""
    rehearsal = False

    def __init__(self, **settings):
        self.settings = {"snapshot.treeish": "stable", "seed.file": None, **settings}

    def get(self, key):
        return self.settings[key]


@pytest.fixture
def homes(tmp_path):
    yield tmp_path
    for home in ("soon", "later"):  # gpg leaves its agent running in each home
        subprocess.run(["gpgconf", "--homedir", str(tmp_path / home), "--kill", "gpg-agent"], check=False)


def test_a_key_that_stops_signing_soon_is_named_with_its_date(homes):
    tmp_path = homes
    soon, soon_keyring = key_with_signing_subkey(tmp_path / "soon", "10d")
    later, later_keyring = key_with_signing_subkey(tmp_path / "later", "never")
    ends = openpgp.signing_expiry(soon_keyring, soon)
    assert 9 * 86400 < ends - time.time() <= 10 * 86400 + 60
    assert openpgp.signing_expiry(later_keyring, later) is None

    build = Build(**{"snapshot.keyring": str(soon_keyring), "snapshot.fingerprint": soon,
                     "seed.keyring": str(later_keyring), "seed.fingerprint": later})
    (line,) = nightly.expiring_keys(build)
    assert line.startswith(f"snapshot.fingerprint: key {soon} stops signing on ")
    assert line.endswith(f": update {soon_keyring} (sec-keys/openpgp-keys-gentoo-release) before then")
    assert nightly.expiring_keys(build, now_epoch=time.time() - 30 * 86400) == []
