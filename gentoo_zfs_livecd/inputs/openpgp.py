"""OpenPGP verification against one pinned key, in a throw-away GnuPG home.

The user's own keyring and trust database never take part: a private GNUPGHOME holds only
the configured key file, and a signature counts only when gpg reports VALIDSIG whose primary
key fingerprint (the last field) is the pinned one, so a signing subkey of the pinned key is
accepted and any other key in the key file is not. Callers get gpg's verified output, never
the text around the signed block, which nothing authenticates.
"""
import contextlib
import io
import re
import tempfile
from pathlib import Path

from gentoo_zfs_livecd.errors import UserError

# No network look-ups for unknown keys; the pinned fingerprint, not the web of trust, decides.
GPG_CONF = "no-auto-key-retrieve\nno-auto-key-locate\ntrust-model always\n"

# Status keywords that mean a signature in the input is not good.
BAD_STATUS = {
    "BADSIG": "the signature is BAD (the signed text was altered)",
    "ERRSIG": "the signature cannot be checked (made by a key that is not in the keyring)",
    "EXPSIG": "the signature has expired",
    "EXPKEYSIG": "the signing key has expired (update the keyring)",
    "REVKEYSIG": "the signing key is revoked",
}


def normalise_fingerprint(fingerprint: str) -> str:
    """Upper-case hex without spaces or `0x`; UserError unless it is a full fingerprint."""
    value = re.sub(r"\s+", "", str(fingerprint or "")).upper().removeprefix("0X")
    if not re.fullmatch(r"[0-9A-F]{40}|[0-9A-F]{64}", value):
        raise UserError(f"OpenPGP fingerprint {fingerprint!r} is not a full 40- or 64-digit fingerprint: "
                        "pin the primary key's full fingerprint")
    return value


@contextlib.contextmanager
def private_home(keyring, fingerprint: str):
    """A temporary GNUPGHOME holding only the keys of `keyring`; yields its path (str).

    UserError when the key file is missing, holds no key, or lacks the pinned primary key.
    """
    pinned = normalise_fingerprint(fingerprint)
    keyring = Path(keyring) if keyring else None
    if keyring is None or not keyring.is_file():
        raise UserError(f"OpenPGP keyring {keyring} does not exist: install it "
                        "(e.g. sec-keys/openpgp-keys-gentoo-release) or set the keyring path")
    with tempfile.TemporaryDirectory(prefix="gnupghome-", ignore_cleanup_errors=True) as home:
        Path(home).chmod(0o700)
        (Path(home) / "gpg.conf").write_text(GPG_CONF)
        imported = gpg(home).import_keys_file(str(keyring))
        primaries = {fpr.upper() for fpr in imported.fingerprints}
        if pinned not in primaries:
            raise UserError(f"OpenPGP keyring {keyring} does not contain the pinned key {pinned}: "
                            "use the right key file or fix the pinned fingerprint")
        yield home


def gpg(home):
    """A python-gnupg handle on `home`; UserError when the gpg program cannot be run."""
    import gnupg

    try:
        return gnupg.GPG(gnupghome=home)
    except (OSError, ValueError) as exc:
        raise UserError(f"gpg cannot be run ({exc}): install GnuPG (app-crypt/gnupg)") from exc


def status_lines(text: str) -> list:
    """The `[GNUPG:]` status lines of gpg's output, as lists of fields."""
    return [line.split()[1:] for line in text.splitlines() if line.startswith("[GNUPG:] ")]


def check_status(status: list, fingerprint: str, source) -> str:
    """Return the signing key's fingerprint if every signature in `status` is good and at
    least one VALIDSIG names the pinned primary key; else UserError naming `source`."""
    pinned = normalise_fingerprint(fingerprint)
    keywords = {fields[0] for fields in status if fields}
    for keyword, reason in BAD_STATUS.items():
        if keyword in keywords:
            raise UserError(f"{source}: {reason}")
    valid = [fields for fields in status if fields and fields[0] == "VALIDSIG"]
    if not valid:
        raise UserError(f"{source}: not signed (no OpenPGP signature found): "
                        "only data signed by the pinned key is accepted")
    for fields in valid:
        if fields[-1].upper() != pinned:
            raise UserError(f"{source}: signed by key {fields[1]} (primary {fields[-1]}), "
                            f"not by the pinned key {pinned}")
    return valid[0][1].upper()


def verify_clearsigned(document, keyring, fingerprint: str, source) -> str:
    """The signed text of the clearsigned `document` (str or bytes), verified with the pinned key.

    `source` (URL or file) names the document in errors.
    """
    data = document.encode() if isinstance(document, str) else document
    with private_home(keyring, fingerprint) as home:
        result = gpg(home).decrypt(data)
    check_status(status_lines(result.stderr), fingerprint, source)
    if result.returncode != 0:
        raise UserError(f"{source}: gpg failed to verify it (exit {result.returncode})")
    return result.data.decode()


def verify_detached(path, signature: bytes, keyring, fingerprint: str, source=None) -> None:
    """Check the detached `signature` over the file at `path` with the pinned key."""
    path = Path(path)
    source = source or path
    if not path.is_file():
        raise UserError(f"{path}: file to verify does not exist")
    with private_home(keyring, fingerprint) as home:
        result = gpg(home).verify_file(io.BytesIO(signature), data_filename=str(path))
    check_status(status_lines(result.stderr), fingerprint, source)
    if result.returncode != 0:
        raise UserError(f"{source}: gpg failed to verify it (exit {result.returncode})")
