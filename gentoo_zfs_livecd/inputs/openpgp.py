"""OpenPGP signing, and verification against one pinned key in a throw-away GnuPG home.

The user's own keyring and trust database never take part in a verification: a private
GNUPGHOME holds only the given keys, and a signature counts only when gpg finds it good and
the primary key that made it (directly or through a signing subkey) is the pinned one, so
any other key in the key file is not accepted. Callers get gpg's verified output, never the
text around the signed block, which nothing authenticates.

gpg's status lines are read by python-gnupg alone: its Verify result (`valid`, `problems`,
`sig_info` with each good signature's `fingerprint` and `pubkey_fingerprint`) decides, also
for the status lines `git verify-commit --raw` passes on.
"""
import contextlib
import io
import os
import re
import subprocess
import tempfile
from pathlib import Path

from gentoo_zfs_livecd.errors import UserError

# No network look-ups for unknown keys; the pinned fingerprint, not the web of trust, decides.
# no-autostart: checking signatures needs no gpg-agent, and one started here would outlive the
# throw-away home.
GPG_CONF = "no-auto-key-retrieve\nno-auto-key-locate\ntrust-model always\nno-autostart\n"

# python-gnupg's Verify.problems statuses (gnupg.py 0.5.7, Verify.handle_status) that mean a
# signature cannot be accepted, as the sentence that says so.
PROBLEMS = {
    "signature bad": "the signature is BAD (the signed text was altered): fetch it again from a good source",
    "signature expired": "the signature has expired: fetch a freshly signed copy",
}
KEY_PROBLEMS = {
    "signing key has expired": "which has expired: update the keyring {keyring} (an updated key file "
                               "carries the new expiry date) or pin the key that replaced it",
    "signing key was revoked": "which has been revoked: do not use this data; pin the key that replaced it",
}
UNKNOWN_KEY = {"signature error", "no public key"}


# How a clearsigned document begins (RFC 4880, 7. Cleartext Signature Framework).
CLEARSIGNED_HEADER = "-----BEGIN PGP SIGNED MESSAGE-----"
# Instead of one fingerprint: any primary key of the keyring may sign, as Portage verifies the
# raw gentoo.git, whose commits each developer signs (sec-keys/openpgp-keys-gentoo-developers).
ANY_KEY = "any"


def normalise_fingerprint(fingerprint: str) -> str:
    """Upper-case hex without spaces or `0x` (or ANY_KEY); UserError unless it is a full fingerprint."""
    if fingerprint == ANY_KEY:
        return ANY_KEY
    value = re.sub(r"\s+", "", str(fingerprint or "")).upper().removeprefix("0X")
    if not re.fullmatch(r"[0-9A-F]{40}|[0-9A-F]{64}", value):
        raise UserError(f"OpenPGP fingerprint {fingerprint!r} is not a full 40- or 64-digit fingerprint: "
                        "pin the primary key's full fingerprint")
    return value


def key_data(keyring) -> bytes:
    """The keys of `keyring`: a key file (path), or the keys themselves (bytes)."""
    if isinstance(keyring, bytes):
        return keyring
    path = Path(keyring) if keyring else None
    if path is None or not path.is_file():
        raise UserError(f"OpenPGP keyring {path} does not exist: install it "
                        "(e.g. sec-keys/openpgp-keys-gentoo-release) or set the keyring path")
    return path.read_bytes()


def keyring_name(keyring) -> str:
    return "(the signer's exported public key)" if isinstance(keyring, bytes) else str(keyring)


@contextlib.contextmanager
def private_home(keyring, fingerprint: str):
    """A python-gnupg handle on a temporary GNUPGHOME holding only the keys of `keyring`.

    UserError when the key file is missing, holds no key, or lacks the pinned primary key.
    """
    pinned = normalise_fingerprint(fingerprint)
    data = key_data(keyring)
    with tempfile.TemporaryDirectory(prefix="gnupghome-", ignore_cleanup_errors=True) as home:
        Path(home).chmod(0o700)
        (Path(home) / "gpg.conf").write_text(GPG_CONF)
        handle = gpg(home)
        primaries = {fpr.upper() for fpr in handle.import_keys(data).fingerprints}
        if not primaries:
            raise UserError(f"OpenPGP keyring {keyring_name(keyring)} holds no key: use the right key file")
        if pinned != ANY_KEY and pinned not in primaries:
            raise UserError(f"OpenPGP keyring {keyring_name(keyring)} does not contain the pinned key {pinned}: "
                            "use the right key file or fix the pinned fingerprint")
        yield handle


def check_pinned_key(keyring, fingerprint: str) -> None:
    """UserError unless `keyring` is a key file holding the pinned primary key."""
    with private_home(keyring, fingerprint):
        pass


def gpg(home):
    """A python-gnupg handle on `home` (None: the user's own); UserError when gpg cannot be run."""
    import gnupg

    try:
        return gnupg.GPG(gnupghome=None if home is None else str(home))
    except (OSError, ValueError) as exc:
        raise UserError(f"gpg cannot be run ({exc}): install GnuPG (app-crypt/gnupg)") from exc


def require_pinned(result, keyring, fingerprint: str, source) -> None:
    """UserError naming `source` unless python-gnupg's Verify `result` holds only good
    signatures, at least one, each made by the pinned primary key or one of its subkeys (with
    ANY_KEY: by any key of the keyring, which gpg checked)."""
    pinned = normalise_fingerprint(fingerprint)
    if result.problems:
        raise UserError(f"{source}: {problem_sentence(result.problems[0], result, keyring, pinned)}")
    signers = [info for info in result.sig_info.values() if info.get("pubkey_fingerprint")]
    if not result.valid or not signers:
        raise UserError(f"{source}: not signed (no OpenPGP signature found): "
                        "only data signed by the pinned key is accepted")
    for info in signers:
        if pinned != ANY_KEY and info["pubkey_fingerprint"].upper() != pinned:
            raise UserError(f"{source}: signed by key {info['fingerprint']} (primary {info['pubkey_fingerprint']}), "
                            f"not by the pinned key {pinned}: use data signed by that key or fix the pin")


def problem_sentence(problem: dict, result, keyring, pinned: str) -> str:
    status = problem["status"]
    if status in KEY_PROBLEMS:
        signature = next((info for info in result.sig_info.values() if info.get("keyid") == problem["keyid"]), {})
        key = signature.get("pubkey_fingerprint") or problem["keyid"]
        user = f" ({result.username})" if result.username else ""
        return f"signed by key {key}{user}, " + KEY_PROBLEMS[status].format(keyring=keyring_name(keyring))
    if status in UNKNOWN_KEY:
        key = problem.get("fingerprint") or problem["keyid"]
        return (f"the signature cannot be checked (made by key {key}, which is not in the keyring "
                f"{keyring_name(keyring)}): only data signed by the pinned key {pinned} is accepted")
    return PROBLEMS.get(status, f"the signature is not good ({status})")


def require_success(result, source) -> None:
    if result.returncode != 0:
        raise UserError(f"{source}: gpg failed to verify it (exit {result.returncode})")


def verify_clearsigned(document, keyring, fingerprint: str, source) -> str:
    """The signed text of the clearsigned `document` (str or bytes), verified with the pinned key.

    `keyring`: a key file, or the keys themselves (bytes); `source` (URL or file) names the
    document in errors.
    """
    data = document.encode() if isinstance(document, str) else document
    with private_home(keyring, fingerprint) as handle:
        result = handle.decrypt(data)
    require_pinned(result, keyring, fingerprint, source)
    require_success(result, source)
    return result.data.decode()


def verify_detached(path, signature: bytes, keyring, fingerprint: str, source=None) -> None:
    """Check the detached `signature` over the file at `path` with the pinned key."""
    path = Path(path)
    source = source or path
    if not path.is_file():
        raise UserError(f"{path}: file to verify does not exist")
    with private_home(keyring, fingerprint) as handle:
        result = handle.verify_file(io.BytesIO(signature), data_filename=str(path))
    require_pinned(result, keyring, fingerprint, source)
    require_success(result, source)


def verify_by_program(argv, keyring, fingerprint: str, source) -> int:
    """Run `argv`, a program that has gpg check a signature and passes gpg's status lines on
    to its stderr (as `git verify-commit --raw` does), with the private home as GNUPGHOME.

    UserError unless the signature is good and the pinned key's; returns the exit status.
    """
    with private_home(keyring, fingerprint) as handle:
        done = subprocess.run(argv, capture_output=True, text=True,
                              env={**os.environ, "GNUPGHOME": handle.gnupghome})
        result = handle.result_map["verify"](handle)
        # python-gnupg's own reader of status lines, the one its verify methods use.
        handle._read_response(io.StringIO(done.stderr), result)
    require_pinned(result, keyring, fingerprint, source)
    return done.returncode


class Signer:
    """Signs with `key` from a GnuPG home (None: the user's own), and checks every signature
    against the signer's public key in a private home before handing it out."""

    def __init__(self, key: str, gnupg_home=None):
        if gnupg_home is not None and not Path(gnupg_home).is_dir():
            raise UserError(f"GnuPG home {gnupg_home} does not exist: set digests.gnupg_home to the signer's GnuPG home")
        self.key = key
        self.handle = gpg(gnupg_home)
        if not self.handle.list_keys(secret=True, keys=[key]):
            raise UserError(f"GnuPG key {key} not found in {gnupg_home or '~/.gnupg'}; import it or fix the key id")

    def clearsign(self, text: str, source) -> bytes:
        """`text` clearsigned; UserError naming `source` when signing or its check fails."""
        signed = self.sign(io.BytesIO(text.encode()), f"clearsign {source}", clearsign=True)
        if verify_clearsigned(signed.data, *self.public_key(signed), source) != text:
            raise UserError(f"{source}: the clearsigned text differs from what was signed; "
                            "check gpg's configuration (e.g. a not-dash-escaped option)")
        return signed.data

    def detach_sign(self, path, source) -> bytes:
        """An armoured detached signature over the file at `path`, checked before it is returned."""
        # An open stream, not the path: python-gnupg 0.5.7 closes a file it opened itself
        # while its copying thread may still be reading it (sign_file's `finally`).
        with open(path, "rb") as stream:
            signed = self.sign(stream, f"sign {path}", clearsign=False, detach=True)
        verify_detached(path, signed.data, *self.public_key(signed), source)
        return signed.data

    def sign(self, data, action: str, **how):
        signed = self.handle.sign_file(data, extra_args=["--local-user", self.key], **how)
        if not signed:
            detail = f" ({signed.status_detail})" if signed.status_detail else ""
            raise UserError(f"gpg could not {action}: {signed.status or f'exit {signed.returncode}'}{detail}; "
                            "check the key id, its passphrase/agent and the GnuPG home")
        return signed

    def public_key(self, signed) -> tuple:
        """(exported public key, primary fingerprint) of the key that made `signed`."""
        primary = self.handle.list_keys(keys=[signed.fingerprint])[0]["fingerprint"]
        return self.handle.export_keys(primary).encode(), primary


def signing_expiry(keyring, fingerprint: str) -> int | None:
    """When the pinned key can no longer make valid signatures: the latest expiry (Unix time)
    among its signing-capable primary and subkeys that are valid now; None when one of them
    never expires. Read from python-gnupg's key listing (its `cap`, `trust` and `expires`)."""
    pinned = normalise_fingerprint(fingerprint)
    with private_home(keyring, fingerprint) as handle:
        key = next(key for key in handle.list_keys() if key["fingerprint"].upper() == pinned)
        parts = [key, *key.get("subkey_info", {}).values()]
        signing = [part for part in parts if "s" in part.get("cap", "") and part.get("trust") not in ("r", "e")]
        ends = [int(part["expires"]) if part.get("expires") else None for part in signing]
    if not ends:
        return 0  # it can sign nothing now
    return None if None in ends else max(ends)
