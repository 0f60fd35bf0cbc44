"""Integrity sidecars of a release artifact, as Gentoo's mirror publishes them.

`<artifact>.DIGESTS` (one block per algorithm, for the artifact and its `.CONTENTS.gz`),
`<artifact>.sha256`, and optionally, with a GnuPG key: the DIGESTS and sha256 files
clearsigned in place and a detached armoured `<artifact>.asc`. Every signature is
verified (status VALIDSIG by that key) before it replaces anything on disk.
"""
import hashlib
import subprocess
from pathlib import Path

from gentoo_zfs_livecd import atomic
from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.release import digestfile
from gentoo_zfs_livecd.release.hashing import hash_file

DEFAULT_ALGORITHMS = ("blake2b", "sha512", "md5", "sha1")
SIGNED_HEADER = "-----BEGIN PGP SIGNED MESSAGE-----"


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
    fingerprints = key_fingerprints(key, gnupg_home)
    written = []
    for path in (sidecar(artifact, ".DIGESTS"), sidecar(artifact, ".sha256")):
        if not path.is_file():
            raise UserError(f"{path}: missing; write the digests before signing")
        text = path.read_text()
        if text.startswith(SIGNED_HEADER):
            raise UserError(f"{path}: already clearsigned; write the digests again before signing")
        signed = gpg(gnupg_home, ["--local-user", key, "--clearsign"], f"clearsign {path}",
                     input=text.encode())
        verified = _verify_clearsigned_bytes(signed, fingerprints, gnupg_home, path)
        if verified.decode() != text:
            raise UserError(f"{path}: the clearsigned text differs from what was signed; "
                            "check gpg's configuration (e.g. a not-dash-escaped option)")
        atomic.write_bytes(path, signed)
        written.append(path)
    signature = gpg(gnupg_home, ["--local-user", key, "--armor", "--detach-sign", "--output", "-",
                                 str(artifact)], f"sign {artifact}")
    asc = sidecar(artifact, ".asc")
    _verify_detached_bytes(signature, artifact, fingerprints, gnupg_home, asc)
    atomic.write_bytes(asc, signature)
    written.append(asc)
    return written


def verify_clearsigned(path, key: str, gnupg_home=None) -> str:
    """The signed text of a clearsigned file, after checking VALIDSIG by `key`; else UserError."""
    path = Path(path)
    data = path.read_bytes()
    return _verify_clearsigned_bytes(data, key_fingerprints(key, gnupg_home), gnupg_home, path).decode()


def verify_detached(artifact, key: str, gnupg_home=None, signature=None) -> None:
    """Check `<artifact>.asc` (or `signature`) over `artifact` for VALIDSIG by `key`; else UserError."""
    artifact = Path(artifact)
    signature_path = Path(signature) if signature else sidecar(artifact, ".asc")
    _verify_detached_bytes(signature_path.read_bytes(), artifact,
                           key_fingerprints(key, gnupg_home), gnupg_home, signature_path)


def key_fingerprints(key: str, gnupg_home=None) -> set:
    """Fingerprints of `key` (primary and subkeys) in the keyring; UserError if absent."""
    out = gpg(gnupg_home, ["--with-colons", "--fingerprint", "--list-keys", key],
              f"find key {key}").decode()
    found = {line.split(":")[9].upper() for line in out.splitlines() if line.startswith("fpr:")}
    if not found:
        raise UserError(f"GnuPG key {key} not found in {gnupg_home or '~/.gnupg'}; import it or fix the key id")
    return found


def gpg(home, args, action: str, input=None) -> bytes:
    """stdout of gpg in batch mode; UserError naming `action` on failure."""
    argv = ["gpg", "--batch", "--no-tty", "--yes"]
    if home is not None:
        argv += ["--homedir", str(home)]
    try:
        done = subprocess.run(argv + list(args), input=input, capture_output=True)
    except FileNotFoundError:
        raise UserError("gpg not found; install gnupg") from None
    if done.returncode != 0:
        raise UserError(f"gpg could not {action}: {_last_error(done.stderr)}; "
                        "check the key id, its passphrase/agent and the GnuPG home")
    return done.stdout


def _verify_clearsigned_bytes(signed: bytes, fingerprints, home, path) -> bytes:
    done = _run_verify(home, ["--output", "-", "--verify"], signed)
    _require_validsig(done, fingerprints, path)
    return done.stdout


def _verify_detached_bytes(signature: bytes, artifact, fingerprints, home, signature_path):
    done = _run_verify(home, ["--verify", "-", str(artifact)], signature)
    _require_validsig(done, fingerprints, signature_path, artifact)


def _run_verify(home, args, input):
    argv = ["gpg", "--batch", "--no-tty", "--status-fd", "2"]
    if home is not None:
        argv += ["--homedir", str(home)]
    return subprocess.run(argv + args, input=input, capture_output=True)


def _require_validsig(done, fingerprints, path, artifact=None):
    """A VALIDSIG line whose signing key or primary key is one of `fingerprints`."""
    signers = []
    for line in done.stderr.decode(errors="replace").splitlines():
        words = line.split()
        if words[:2] == ["[GNUPG:]", "VALIDSIG"] and len(words) >= 3:
            signers.append((words[2].upper(), words[-1].upper()))
    over = f" over {artifact}" if artifact else ""
    if done.returncode != 0 or not signers:
        raise UserError(f"{path}: signature{over} does not verify ({_last_error(done.stderr)}); "
                        "the file was changed after signing or the key is wrong")
    if not any(set(signer) & set(fingerprints) for signer in signers):
        found = ", ".join(signer[0] for signer in signers)
        raise UserError(f"{path}: signed{over} by {found}, not by the expected key "
                        f"({' or '.join(sorted(fingerprints))}); sign with the release key")


def _last_error(stderr: bytes) -> str:
    lines = [l for l in stderr.decode(errors="replace").splitlines()
             if l.strip() and not l.startswith("[GNUPG:]")]
    return lines[-1].strip() if lines else "no error message"
