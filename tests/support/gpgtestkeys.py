"""Real GnuPG keys made by the tests: one primary key with a signing subkey, like Gentoo's."""
import subprocess
from pathlib import Path


def gpg(home, *args, input=None):
    """Run gpg in `home` in batch mode; return its stdout (bytes)."""
    cmd = ["gpg", "--homedir", str(home), "--batch", "--yes", "--pinentry-mode", "loopback",
           "--passphrase", "", *args]
    return subprocess.run(cmd, input=input, check=True, capture_output=True).stdout


def make_key(home, name="Test Release Key", email="releng@example.org"):
    """Create a certify-only primary key with a signing subkey in `home`.

    Returns (primary fingerprint, signing subkey fingerprint, armoured public key).
    """
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    uid = f"{name} <{email}>"
    gpg(home, "--quick-gen-key", uid, "ed25519", "cert", "never")
    primary = fingerprints(home, uid)[0]
    gpg(home, "--quick-add-key", primary, "ed25519", "sign", "never")
    subkey = fingerprints(home, uid)[1]
    public = gpg(home, "--armor", "--export", primary)
    return primary, subkey, public


def fingerprints(home, uid):
    """Fingerprints of the key `uid`: primary first, then subkeys."""
    out = gpg(home, "--with-colons", "--fingerprint", "--list-keys", uid).decode()
    return [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")]


def clearsign(home, text: str, key: str) -> str:
    """Clearsign `text` with `key` from `home`."""
    return gpg(home, "--local-user", key, "--clearsign", input=text.encode()).decode()


def detach_sign(home, data: bytes, key: str) -> bytes:
    """Armoured detached signature of `data`."""
    return gpg(home, "--local-user", key, "--armor", "--detach-sign", input=data)


class Keys:
    """A release key and another key that signs too but is not trusted, each in its own home."""

    def __init__(self, root: Path):
        self.home = root / "signer"
        self.primary, self.subkey, public = make_key(self.home)
        self.other_home = root / "other"
        _, self.other_subkey, _ = make_key(self.other_home, "Other Key", "other@example.org")
        self.keyring = root / "release.asc"
        self.keyring.write_bytes(public)

    def sign(self, text: str) -> str:
        return clearsign(self.home, text, self.subkey)

    def sign_other(self, text: str) -> str:
        return clearsign(self.other_home, text, self.other_subkey)

    def close(self):
        for home in (self.home, self.other_home):
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)
