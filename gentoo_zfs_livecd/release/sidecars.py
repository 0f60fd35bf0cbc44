"""Integrity sidecars of a release artifact, as Gentoo's mirror publishes them.

`<artifact>.DIGESTS` (one block per algorithm, for the artifact and its `.CONTENTS.gz`),
`<artifact>.sha256`, and optionally, with a GnuPG key: the DIGESTS and sha256 files
clearsigned in place and a detached armoured `<artifact>.asc`, made and checked by
`openpgp.Signer` before anything on disk is replaced.
"""
import hashlib
from pathlib import Path

from gentoo_zfs_livecd import atomic
from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.inputs import openpgp
from gentoo_zfs_livecd.release import digestfile
from gentoo_zfs_livecd.release.hashing import hash_file

DEFAULT_ALGORITHMS = ("blake2b", "sha512", "md5", "sha1")


def sidecar(artifact, suffix: str) -> Path:
    """`<artifact><suffix>`, e.g. sidecar(iso, ".DIGESTS")."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + suffix)


def write_digests(artifact, algorithms=DEFAULT_ALGORITHMS):
    """Write `<artifact>.DIGESTS` and `<artifact>.sha256`; return their paths.

    Each file (the artifact, and `<artifact>.CONTENTS.gz` if present) is read once for
    all algorithms. Raises UserError for an unknown algorithm or a missing artifact.
    """
    artifact = Path(artifact)
    algorithms = list(dict.fromkeys(algorithms))
    unknown = [a for a in algorithms if a not in hashlib.algorithms_available]
    if unknown:
        raise UserError(f"unknown digest algorithm(s) {', '.join(unknown)}; use names from "
                        f"hashlib.algorithms_available, e.g. {', '.join(DEFAULT_ALGORITHMS)}")
    if not artifact.is_file():
        raise UserError(f"{artifact}: no such file to write digests for; build it first")
    files = [artifact] + [p for p in [sidecar(artifact, ".CONTENTS.gz")] if p.is_file()]
    entries = []
    sha256 = None
    for path in files:
        extra = ["sha256"] if path == artifact else []
        digests = hash_file(path, algorithms + [a for a in extra if a not in algorithms])
        if path == artifact:
            sha256 = digests["sha256"]
        entries.append((path.name, {a: digests[a] for a in algorithms}))
    digests_path = sidecar(artifact, ".DIGESTS")
    sha256_path = sidecar(artifact, ".sha256")
    atomic.write_text(digests_path, digestfile.format(entries))
    atomic.write_text(sha256_path, digestfile.format([(artifact.name, {"sha256": sha256})]))
    return digests_path, sha256_path


def sign_release(artifact, key: str, gnupg_home=None):
    """Clearsign `<artifact>.DIGESTS` and `.sha256` in place and write `<artifact>.asc`.

    Returns the three paths. Each signature is verified before it is written; raises
    UserError if the key is unknown, gpg fails, a sidecar is already signed, or a
    verification fails.
    """
    artifact = Path(artifact)
    signer = openpgp.Signer(key, gnupg_home)
    written = []
    for path in (sidecar(artifact, ".DIGESTS"), sidecar(artifact, ".sha256")):
        if not path.is_file():
            raise UserError(f"{path}: missing; write the digests before signing")
        text = path.read_text()
        if text.startswith(openpgp.CLEARSIGNED_HEADER):
            raise UserError(f"{path}: already clearsigned; write the digests again before signing")
        atomic.write_bytes(path, signer.clearsign(text, path))
        written.append(path)
    asc = sidecar(artifact, ".asc")
    atomic.write_bytes(asc, signer.detach_sign(artifact, asc))
    written.append(asc)
    return written
