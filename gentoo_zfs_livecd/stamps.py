"""A record of (mtime, size, SHA512) for every large file the build has hashed.

Catalyst's artifacts are many GB. Each is hashed once when it is produced (or first seen); after
that its digest is taken from this record as long as its mtime and size match. When only the
mtime moved (a touch, a copy with new times) the file is hashed once more and the record
refreshed, so the runs after it read nothing.
"""
import json
import os
from pathlib import Path

from gentoo_zfs_livecd import atomic
from gentoo_zfs_livecd.release.hashing import hash_file

# Below this size a file is simply hashed each time it is checked (inputs: specs, overlays).
LARGE = 1024 * 1024

_records: dict = {}
_loaded_from: Path | None = None


def _load(store: Path) -> dict:
    global _loaded_from, _records
    if _loaded_from != store:
        try:
            _records = json.loads(store.read_text())
        except (FileNotFoundError, ValueError):
            _records = {}
        _loaded_from = store
    return _records


def _key(path) -> str:
    return str(Path(path).absolute())


def _save(store: Path) -> None:
    atomic.write_text(store, json.dumps(_records, indent=1, sort_keys=True))


def digest(store: Path, path, stat: os.stat_result | None = None) -> str:
    """SHA512 of `path`, read from the record when its mtime and size still match."""
    records = _load(store)
    stat = stat or os.stat(path)
    record = records.get(_key(path))
    if record and record["mtime_ns"] == stat.st_mtime_ns and record["size"] == stat.st_size:
        return record["sha512"]
    value = hash_file(path, ["sha512"])["sha512"]
    records[_key(path)] = {"mtime_ns": stat.st_mtime_ns, "size": stat.st_size, "sha512": value}
    _save(store)
    return value


def record(store: Path, path, sha512: str) -> dict:
    """Note a digest computed elsewhere (a download, a produced artifact); returns the stamp."""
    records = _load(store)
    stat = os.stat(path)
    stamp = {"mtime_ns": stat.st_mtime_ns, "size": stat.st_size, "sha512": sha512}
    records[_key(path)] = stamp
    _save(store)
    return stamp


def known(store: Path, path) -> bool:
    return _key(path) in _load(store)


def forget(store: Path, path) -> None:
    records = _load(store)
    if records.pop(_key(path), None) is not None:
        _save(store)


def content_digest(store: Path, path, stat: os.stat_result) -> str:
    """What a file's content is compared by: MD5 of a small file, the recorded SHA512 of a large one."""
    if stat.st_size < LARGE:
        import hashlib
        return hashlib.md5(Path(path).read_bytes()).hexdigest()
    return digest(store, path, stat)


def signature(store: Path, files) -> str:
    """One digest over the names and contents of `files` (large ones by their record)."""
    import hashlib
    total = hashlib.sha256()
    for path in sorted(str(f) for f in files):
        total.update(f"{path}\0{content_digest(store, path, os.stat(path))}\n".encode())
    return total.hexdigest()
