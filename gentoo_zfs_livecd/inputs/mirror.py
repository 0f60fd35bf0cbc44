"""Stage3 seeds from Gentoo mirrors: signed listing, resumable download hashed on the fly,
signed DIGESTS, failover between mirrors.

Flow per mirror (gentoo-releng §4.4): GET and verify the clearsigned
`latest-stage3-<arch>-<flavour>.txt`; if the current pin already names that file and size,
stop. Else GET and verify `<file>.DIGESTS`, download `<file>` into `<work_dir>/<file>.part`
while computing SHA512 and BLAKE2B, compare size and digests with the signed documents and
rename the file to `<work_dir>/<file>.verified`. Only `place_seed` puts a file where Catalyst
looks for its seed, so an interrupted or failed run leaves at most a `.part` file in
`work_dir` (kept, so that the next attempt resumes it; deleted once its digests are wrong).
"""
import contextlib
import errno
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple, Optional

from gentoo_zfs_livecd.atomic import link_or_copy, symlink
from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.files import beyond_newest
from gentoo_zfs_livecd.inputs.openpgp import CLEARSIGNED_HEADER, check_pinned_key, verify_clearsigned
from gentoo_zfs_livecd.release import digestfile
from gentoo_zfs_livecd.release.hashing import MultiHasher, hash_file

ALGORITHMS = ("sha512", "blake2b")
TIMEOUT = (10, 60)  # seconds: connect, then between two reads
CHUNK = 4 * 1024 * 1024
MAX_STALLED_RESUMES = 5  # consecutive dropped connections that brought no new byte
PROGRESS_INTERVAL = 10.0  # seconds between plain progress lines when not on a terminal


class SeedResult(NamedTuple):
    name: str  # basename of the tarball, as the mirror names it
    size: int
    sha512: str
    path: Optional[Path]  # the verified file in work_dir; None when the pin was already current


def listing_url(mirror: str, arch: str, flavour: str) -> str:
    return f"{autobuilds_url(mirror, arch)}latest-stage3-{arch}-{flavour}.txt"


def autobuilds_url(mirror: str, arch: str) -> str:
    return f"{mirror.rstrip('/')}/releases/{arch}/autobuilds/"


def parse_listing(text: str, source) -> list:
    """[(relative path, size)] from the (already verified) text of a `latest-*.txt`."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit():
            raise UserError(f"{source}: unexpected line {line!r}: expected '<dir>/<file> <size>'")
        path, size = fields[0], int(fields[1])
        if path.startswith("/") or ".." in path.split("/") or "://" in path:
            raise UserError(f"{source}: path {path!r} is not relative to the autobuilds directory")
        entries.append((path, size))
    return entries


def single_entry(text: str, source) -> tuple:
    """The one (path, size) of a per-variant listing; UserError when there is not exactly one."""
    entries = parse_listing(text, source)
    if len(entries) != 1:
        raise UserError(f"{source}: expected one '<dir>/<file> <size>' line in the signed text, found {len(entries)}")
    return entries[0]


def make_session(retries: int = 3, backoff: float = 0.5):
    """A requests session that retries connection errors and 5xx answers with backoff."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(total=retries, connect=retries, read=retries, status=retries, backoff_factor=backoff,
                  status_forcelist=(500, 502, 503, 504), allowed_methods=frozenset({"GET"}),
                  raise_on_status=False)
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # Byte counts and Range offsets must refer to the file itself, not a compressed transfer.
    session.headers["Accept-Encoding"] = "identity"
    return session


def network_reason(exc) -> str:
    """A short reason for a requests or urllib3 exception, without its nested reprs."""
    import requests
    from urllib3.exceptions import ProtocolError, ReadTimeoutError

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code} {exc.response.reason}"
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, ProtocolError)):
        return "connection broken in the middle of the body"
    if isinstance(exc, (requests.Timeout, ReadTimeoutError)):
        return "timed out"
    errno_text = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    if errno_text:
        return errno_text.group(1).strip()
    return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def http_errors(url):
    """Turn requests' exceptions into a one-line UserError naming `url`."""
    import requests

    try:
        yield
    except requests.RequestException as exc:
        raise UserError(f"{url}: {network_reason(exc)}") from exc


def get_text(session, url: str) -> str:
    with http_errors(url):
        response = session.get(url, timeout=TIMEOUT)
        response.raise_for_status()
    return response.content.decode("utf-8", errors="replace")


def get_signed_text(session, url: str, keyring, fingerprint: str) -> str:
    """The verified signed text of the clearsigned document at `url`."""
    return verify_clearsigned(get_text(session, url), keyring, fingerprint, url)


def expected_digests(text: str, name: str, source) -> dict:
    """{algorithm: hex} that the DIGESTS `text` gives for `name`; SHA512 is required."""
    entries = digestfile.parse(text)
    if name not in entries:
        listed = ", ".join(sorted(entries)) or "no file"
        raise UserError(f"{source}: has no digests for {name} (it lists {listed})")
    digests = entries[name]
    if "sha512" not in digests:
        raise UserError(f"{source}: has no SHA512 digest for {name}")
    return {algorithm: digests[algorithm] for algorithm in ALGORITHMS if algorithm in digests}


def check_digests(actual: dict, expected: dict, name: str, source) -> None:
    for algorithm, hexdigest in expected.items():
        if actual[algorithm] != hexdigest:
            raise UserError(f"{name}: {algorithm.upper()} does not match {source}: the file is corrupt or was altered")


class PartFile:
    """A `.part` file and the running digests of the bytes in it.

    Pieces are written as they arrive, so a dropped connection loses nothing already
    received. They are hashed in CHUNK-sized batches on a worker thread, one batch at a
    time, so the next batch is read from the network while the previous one is hashed.
    """

    def __init__(self, path: Path, size: int):
        self.path = path
        self.stream = open(path, "r+b" if path.exists() else "w+b")
        self.worker = ThreadPoolExecutor(max_workers=1)
        self.hasher = MultiHasher(ALGORITHMS)
        self.hashing = None  # the batch being hashed
        self.pending, self.pending_size = [], 0
        self.length = 0
        if path.stat().st_size > size:  # not a prefix of this file: start over
            self.stream.truncate(0)
        # Bytes left by an earlier attempt are hashed again so the digests cover the whole file.
        while chunk := self.stream.read(CHUNK):
            self.submit(chunk)
            self.length += len(chunk)

    def append(self, piece: bytes) -> None:
        self.stream.write(piece)
        self.length += len(piece)
        self.pending.append(piece)
        self.pending_size += len(piece)
        if self.pending_size >= CHUNK:
            self.hash_pending()

    def submit(self, batch) -> None:
        self.wait()
        self.hashing = self.worker.submit(self.hasher.update, batch)

    def wait(self) -> None:
        if self.hashing is not None:
            self.hashing.result()
            self.hashing = None

    def hash_pending(self) -> None:
        if self.pending:
            # One immutable batch (bytes: the hashing threads need not copy it).
            self.submit(b"".join(self.pending))
            self.pending, self.pending_size = [], 0

    def restart(self) -> None:
        self.wait()
        self.stream.seek(0)
        self.stream.truncate(0)
        self.hasher.hexdigests()
        self.hasher = MultiHasher(ALGORITHMS)
        self.pending, self.pending_size = [], 0
        self.length = 0

    def finish(self) -> dict:
        self.hash_pending()
        self.wait()
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self.stream.close()
        return self.hasher.hexdigests()

    def close(self) -> None:
        self.worker.shutdown(cancel_futures=True)
        if not self.stream.closed:
            self.stream.close()
            self.hasher.hexdigests()


class Progress:
    """A tqdm bar on a terminal; otherwise a plain line every PROGRESS_INTERVAL seconds."""

    def __init__(self, label: str, total: int, initial: int, stream=None):
        self.stream = stream or sys.stderr
        self.label, self.total, self.done = label, total, initial
        self.bar = None
        self.last = time.monotonic()
        if self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=label, unit="B", unit_scale=True,
                            unit_divisor=1024, file=self.stream)

    def set(self, done: int) -> None:
        self.done = done
        if self.bar is not None:
            self.bar.n = done
            self.bar.refresh()
        elif time.monotonic() - self.last >= PROGRESS_INTERVAL:
            self.last = time.monotonic()
            self.line()

    def line(self) -> None:
        percent = 100 * self.done // self.total if self.total else 100
        print(f"{self.label}: {self.done >> 20}/{self.total >> 20} MiB ({percent}%)", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        else:
            self.line()


def body_start(response, offset: int, url: str) -> int:
    """Where the body of `response` to a request for bytes `offset`- starts in the file."""
    if response.status_code != 206:
        return 0  # a full answer, e.g. from a server that ignores Range
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", "").strip())
    if not match or int(match.group(1)) != offset:
        raise UserError(f"{url}: answered bytes {response.headers.get('Content-Range')!r} to a request "
                        f"for bytes {offset}-")
    return offset


def check_offered_length(response, start: int, size: int, url: str) -> None:
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit() and start + int(length) != size:
        raise UserError(f"{url}: the server offers {start + int(length)} bytes, the signed listing says {size}")


def download(session, url: str, part_path: Path, size: int, progress_stream=None) -> dict:
    """Download `url` into `part_path` (resuming what is there), return {algorithm: hex}.

    A connection dropped in the middle of the body is resumed with a Range request; a server
    that ignores Range is read again from the start. The size must be exactly `size`.
    """
    from urllib3.exceptions import ProtocolError, ReadTimeoutError

    broken_body = (ProtocolError, ReadTimeoutError)
    part = PartFile(part_path, size)
    progress = Progress(part_path.name.removesuffix(".part"), size, part.length, progress_stream)
    stalled = 0
    try:
        while part.length < size:
            offset = part.length
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            with http_errors(url), session.get(url, headers=headers, stream=True, timeout=TIMEOUT) as response:
                response.raise_for_status()
                start = body_start(response, offset, url)
                if start != offset:
                    part.restart()
                check_offered_length(response, start, size, url)
                try:
                    # read1 hands over whatever arrived; read(n) would drop a partial n on a broken connection.
                    while piece := response.raw.read1(CHUNK):
                        part.append(piece)
                        if part.length > size:
                            raise UserError(f"{url}: longer than the {size} bytes of the signed listing")
                        progress.set(part.length)
                except broken_body as exc:
                    stalled = 0 if part.length > offset else stalled + 1
                    if stalled >= MAX_STALLED_RESUMES:
                        raise UserError(f"{url}: {network_reason(exc)}, {stalled} times at byte {part.length}") from exc
                    continue
                if part.length < size:
                    raise UserError(f"{url}: ended after {part.length} bytes, the signed listing says {size}")
        return part.finish()
    finally:
        part.close()
        progress.close()


def remove_stale_downloads(work_dir: Path, name: str) -> None:
    """Drop `.part`/`.verified` files of other tarballs, left by interrupted runs."""
    for path in work_dir.iterdir():
        if path.suffix in (".part", ".verified") and path.name.rsplit(".", 1)[0] != name:
            path.unlink(missing_ok=True)


def pin_matches(have, name: str, size: int) -> bool:
    return have is not None and have[0] == name and int(have[1]) == size


BUILD_STAMP = re.compile(r"\d{8}T\d{6}Z")


def refuse_older(name: str, pinned: str | None, url: str) -> None:
    """A validly signed but older listing is a rollback (a stale or hostile mirror)."""
    new, old = BUILD_STAMP.search(name), BUILD_STAMP.search(pinned or "")
    if new and old and new.group() < old.group():
        raise UserError(f"{url} offers {name}, older than the pinned {pinned}; refusing to go back in time "
                        "(to build from an older seed on purpose, name it in seed.file)")


def fetch_from_mirror(session, mirror, arch, flavour, keyring, fingerprint, work_dir: Path, have=None,
                      progress_stream=None, pinned=None) -> SeedResult:
    """One mirror's attempt of `fetch_latest_seed`; UserError naming the URL on any failure."""
    url = listing_url(mirror, arch, flavour)
    path, size = single_entry(get_signed_text(session, url, keyring, fingerprint), url)
    name = path.rsplit("/", 1)[-1]
    refuse_older(name, pinned, url)
    if pin_matches(have, name, size):
        return SeedResult(name, size, have[2], None)
    tarball_url = autobuilds_url(mirror, arch) + path
    digests_url = tarball_url + ".DIGESTS"
    expected = expected_digests(get_signed_text(session, digests_url, keyring, fingerprint), name, digests_url)
    work_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_downloads(work_dir, name)
    part_path = work_dir / f"{name}.part"
    resumed = part_path.exists() and part_path.stat().st_size > 0
    actual = download(session, tarball_url, part_path, size, progress_stream)
    if resumed and any(actual[algorithm] != hexdigest for algorithm, hexdigest in expected.items()):
        # The bytes of an earlier attempt (perhaps from another mirror) may be the bad ones.
        part_path.unlink()
        actual = download(session, tarball_url, part_path, size, progress_stream)
    try:
        check_digests(actual, expected, name, digests_url)
    except UserError:
        part_path.unlink()
        raise
    verified = work_dir / f"{name}.verified"
    os.replace(part_path, verified)
    return SeedResult(name, size, actual["sha512"], verified)


def fetch_latest_seed(mirrors, arch: str, flavour: str, keyring, fingerprint: str, work_dir, have=None,
                      session=None, progress_stream=None, pinned=None) -> SeedResult:
    """The newest signed stage3 `<arch>-<flavour>`, downloaded and verified, from the first
    mirror that delivers it.

    `have`: the current pin as (name, size, sha512) (a SeedResult will do); when the signed
    listing names the same file and size, nothing is downloaded and `path` is None. Otherwise
    `path` is `<work_dir>/<name>.verified`, for `place_seed`. `pinned`: the name of the pinned
    seed; a mirror listing an older one is refused (tried as a failed mirror). `work_dir` must be a directory
    of its own (stale downloads in it are removed), not the one Catalyst reads seeds from.
    UserError when every mirror failed, naming each URL and what failed.
    """
    if not mirrors:
        raise UserError("no mirrors configured: list at least one Gentoo mirror URL")
    check_pinned_key(keyring, fingerprint)  # the user's to fix, not a reason to try another mirror
    session = session or make_session()
    failures = []
    for mirror in mirrors:
        try:
            return fetch_from_mirror(session, mirror, arch, flavour, keyring, fingerprint, Path(work_dir),
                                     have, progress_stream, pinned)
        except UserError as exc:
            failures.append(str(exc))
        except OSError as exc:
            raise UserError(f"{work_dir}: cannot write the download: {exc.strerror or exc}") from exc
    raise UserError(f"no mirror gave a verified stage3-{arch}-{flavour}: " + "; ".join(failures)
                    + ": check the mirror list, the network and the keyring")


def move_file(source: Path, target: Path) -> None:
    """Rename `source` to `target`; across file systems, copy it to a temporary name first."""
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        link_or_copy(source, target)
        source.unlink()


def place_seed(verified_file, dest, keep_dir, keep: int, name: Optional[str] = None) -> Path:
    """Make the verified seed the one Catalyst uses at the fixed path `dest`.

    Seeds live in `keep_dir` under their real names (`name`, by default the verified file's
    name without `.verified`); `dest` is a symlink to the current one, switched atomically, so
    Catalyst (which follows symlinks) sees the old seed or the new one, never a partial file.
    A regular file found at `dest` (a seed placed by hand) is kept in `keep_dir` as `dest.name`.
    Besides the current seed, the `keep` newest previous seeds (by mtime) stay in `keep_dir`,
    which therefore must hold nothing but these seeds. Returns the seed's path in `keep_dir`.
    """
    verified_file, dest, keep_dir = Path(verified_file), Path(dest), Path(keep_dir)
    name = name or verified_file.name.removesuffix(".verified")
    if keep_dir.resolve() == dest.parent.resolve():
        raise UserError(f"{keep_dir}: seeds must be kept in a directory of their own, not beside {dest}")
    keep_dir.mkdir(parents=True, exist_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stored = keep_dir / name
    move_file(verified_file, stored)
    if dest.is_file() and not dest.is_symlink():
        link_or_copy(dest, keep_dir / dest.name)  # the symlink then replaces it in one rename
    symlink(os.path.relpath(stored, dest.parent), dest)
    prune_seeds(keep_dir, stored, keep)
    return stored


def prune_seeds(keep_dir: Path, current: Path, keep: int) -> list:
    """Remove all but the `keep` newest files of `keep_dir` besides `current`; return them."""
    previous = [path for path in keep_dir.iterdir() if path.is_file() and path != current]
    removed = beyond_newest(previous, keep, newest_key=lambda path: path.stat().st_mtime)
    for path in removed:
        path.unlink()
    return removed


def verify_local_seed(path, keyring=None, fingerprint=None) -> tuple:
    """(name, size, sha512) of a seed tarball on disk, checked against `<path>.DIGESTS` if present.

    A clearsigned DIGESTS is verified against the pinned key when `keyring` is given; a plain
    one (as Catalyst writes locally) is only parsed. No network.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: seed tarball does not exist")
    actual = hash_file(path, ALGORITHMS)
    digests_path = path.with_name(path.name + ".DIGESTS")
    if digests_path.is_file():
        text = digests_path.read_text(errors="replace")
        if keyring and CLEARSIGNED_HEADER in text:
            text = verify_clearsigned(text, keyring, fingerprint, digests_path)
        check_digests(actual, expected_digests(text, path.name, digests_path), path.name, digests_path)
    return path.name, path.stat().st_size, actual["sha512"]
