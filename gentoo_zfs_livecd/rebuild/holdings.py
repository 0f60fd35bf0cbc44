"""What a built stage holds, read from the artifact itself.

A stage tarball carries Portage's installed-package database: one directory
`var/db/pkg/<category>/<PF>/` per package, whose `INHERITED` file names the eclasses the
package's ebuild used, space separated (INHERITED is one of the keys Portage stores for an
installed package: gentoo/portage, lib/_emerge/Package.py, `metadata_keys`). Catalyst writes the
tarball with `tar -C <root> .`, so member names start with `./`.

Tarballs are several GB. `TarballReader` takes the same chunks the artifact's hash is fed, so
the database is read during the one read that hashes the file: the chunks go through a pipe
to a thread that decompresses them and walks the tar stream.

The ISO stage's live root (`image.squashfs`) lacks what `livecd/unmerge` removed after use
(kernel, dracut, compilers), so its holdings add the spec's unmerge list and kernel packages.
"""
import os
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.release.hashing import CHUNK, MultiHasher

from .atoms import cp_of_atom, cp_of_cpv

FORMAT = 1
VDB = "var/db/pkg"
# Portage's name for a package directory while it is being merged; never a held package.
MERGING_PREFIX = "-MERGING-"
_KERNEL_KEY = re.compile(r"boot/kernel/[^/]+/(sources|packages)")


@dataclass(frozen=True)
class Holdings:
    """Installed packages (`cat/PF` -> eclasses), packages built but removed again
    (`cat/pn` -> eclasses), the profile."""
    profile: str
    packages: dict = field(default_factory=dict)
    removed: dict = field(default_factory=dict)

    @property
    def cps(self) -> frozenset:
        """`cat/pn` of every package the stage holds or built."""
        names = {cp_of_cpv(cpv) for cpv in self.packages} | set(self.removed)
        return frozenset(name for name in names if name)

    @property
    def eclasses(self) -> frozenset:
        return frozenset(name for names in [*self.packages.values(), *self.removed.values()] for name in names)

    def to_json(self, stage: str, snapshot: str) -> dict:
        return {"format": FORMAT, "stage": stage, "snapshot": snapshot, "profile": self.profile,
                "packages": {cpv: sorted(names) for cpv, names in sorted(self.packages.items())},
                "removed": {cp: sorted(names) for cp, names in sorted(self.removed.items())}}

    @classmethod
    def from_json(cls, data: dict) -> "Holdings":
        return cls(profile=data["profile"],
                   packages={cpv: tuple(names) for cpv, names in data["packages"].items()},
                   removed={cp: tuple(names) for cp, names in data["removed"].items()})


# --- var/db/pkg entries ------------------------------------------------------------------

def vdb_entry(name: str) -> tuple[str, str] | None:
    """(`cat/PF`, rest) of a path inside var/db/pkg (`./var/db/pkg/a/b-1/INHERITED`), else None."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if parts[:3] != VDB.split("/") or len(parts) < 5:
        return None
    category, pf = parts[3], parts[4]
    if pf.startswith(MERGING_PREFIX) or cp_of_cpv(f"{category}/{pf}") is None:
        return None
    return f"{category}/{pf}", "/".join(parts[5:])


class VdbCollector:
    """Package directories and their INHERITED files, fed one path at a time."""

    def __init__(self):
        self.packages = {}

    def add(self, name: str, read_content=None) -> None:
        entry = vdb_entry(name)
        if entry is None:
            return
        cpv, rest = entry
        names = self.packages.setdefault(cpv, ())
        if rest == "INHERITED" and read_content is not None:
            self.packages[cpv] = tuple(sorted(set(names) | set(read_content().decode(errors="replace").split())))


# --- stage tarballs ------------------------------------------------------------------------

class TarballReader:
    """Reads var/db/pkg from a compressed tarball fed chunk by chunk, as a MultiHasher is fed.

    A thread reads the other end of a pipe, decompresses and walks the tar stream; it always
    reads to the end of the input, even after an error, so `update` never blocks for good.
    """

    def __init__(self, source: str):
        self.source = source
        self.collector = VdbCollector()
        self.error = None
        read_fd, write_fd = os.pipe()
        self._input = os.fdopen(read_fd, "rb")
        self._output = os.fdopen(write_fd, "wb")
        self._thread = threading.Thread(target=self._run, name="vdb-reader", daemon=True)
        self._thread.start()

    def update(self, chunk) -> None:
        self._output.write(chunk)

    def close(self) -> None:
        """End of input: wait for the thread to finish the stream."""
        if not self._output.closed:
            self._output.close()
            self._thread.join()
            self._input.close()

    def packages(self) -> dict:
        """`cat/PF` -> eclasses, once all chunks are fed; UserError when the stream is no tarball."""
        self.close()
        if self.error is not None:
            raise UserError(f"{self.source}: cannot read its {VDB} ({self.error}); "
                            "the artifact is damaged: rebuild that stage")
        return dict(self.collector.packages)

    def _run(self) -> None:
        import tarfile
        try:
            if self.source.endswith(".zst"):
                import zstandard
                # Catalyst's zstd modes may write several frames (multi-threaded zstd).
                stream = zstandard.ZstdDecompressor().stream_reader(self._input, read_across_frames=True)
                archive = tarfile.open(fileobj=stream, mode="r|")
            else:
                # gzip, bzip2 and xz are recognised by their magic bytes.
                archive = tarfile.open(fileobj=self._input, mode="r|*")
            with archive:
                for member in archive:
                    content = (lambda m=member: archive.extractfile(m).read()) if member.isfile() else None
                    self.collector.add(member.name, content)
        except Exception as error:  # reported by packages() in the caller's thread
            self.error = error
        finally:
            while self._input.read(CHUNK):
                pass


def hash_and_read_tarball(path, algorithms, chunk_size: int = CHUNK) -> tuple[dict, dict]:
    """({algorithm: hex}, {`cat/PF`: eclasses}) of a stage tarball, in one read of the file."""
    hasher = MultiHasher(algorithms)
    reader = TarballReader(str(path))
    try:
        with open(path, "rb", buffering=0) as stream:
            while chunk := stream.read(chunk_size):
                hasher.update(chunk)
                reader.update(chunk)
    finally:
        reader.close()
    return hasher.hexdigests(), reader.packages()


# --- the ISO's live root -------------------------------------------------------------------

def _unsquashfs(image, offset, args) -> subprocess.CompletedProcess:
    argv = ["unsquashfs", "-n", "-o", str(offset), *args]
    try:
        done = subprocess.run(argv, capture_output=True)
    except FileNotFoundError:
        raise UserError("unsquashfs not found; install squashfs-tools") from None
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines() or [f"exit {done.returncode}"]
        raise UserError(f"{image}: unsquashfs cannot read {VDB} ({lines[-1]}); rebuild the ISO")
    return done


def squashfs_packages(image, offset: int = 0) -> dict:
    """`cat/PF` -> eclasses of a squashfs image (at byte `offset` of `image`, e.g. inside an
    ISO): one listing of var/db/pkg and one extraction of just its INHERITED files."""
    collector = VdbCollector()
    listing = _unsquashfs(image, offset, ["-l", str(image), VDB]).stdout.decode(errors="replace")
    with tempfile.TemporaryDirectory(prefix="vdb-") as tmp:
        root = Path(tmp) / "root"
        _unsquashfs(image, offset, ["-d", str(root), str(image), f"{VDB}/*/*/INHERITED"])
        for line in listing.splitlines():
            name = line.strip().partition("/")[2]  # drop unsquashfs's "squashfs-root/" prefix
            file = root / name
            collector.add(name, file.read_bytes if name.endswith("/INHERITED") and file.is_file() else None)
    return collector.packages


def spec_removed_packages(values: dict) -> tuple:
    """`cat/pn` the ISO spec builds but its live root no longer lists: `livecd/unmerge` and the
    kernels' `boot/kernel/<name>/sources` and `packages`."""
    atoms = []
    for key, value in values.items():
        if key == "livecd/unmerge" or _KERNEL_KEY.fullmatch(key):
            atoms += [value] if isinstance(value, str) else list(value or [])
    names = {cp_of_atom(atom) for atom in atoms}
    return tuple(sorted(name for name in names if name))
