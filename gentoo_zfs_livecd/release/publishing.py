"""Publish a release directory so that readers see the old release or the new, never a part.

Layout of `publish_dir` (it may hold other things: only the folders named in the record of
releases are releases, and only those are ever pruned):

    <release_name>/<iso> + sidecars + build-info.json
    .gentoo-zfs-livecd-releases   the releases this project published, one name a line
    current -> <release_name>
    latest-iso.txt            Gentoo's layout: "# Latest as of <date -uR>", "# ts=<epoch>",
                              "<release_name>/<iso> <size>"
    .staging-*                work in progress or leftovers of a killed run (removed at start)
    .publish.lock             held while publishing, so two runs cannot interleave

Publishing a release name that already exists is allowed only when the existing directory
holds the same files with the same content (the run that made it was killed before it
updated `current`): the pointers are then brought up to date. Different content raises
UserError, because replacing a published release would change files that mirrors and
users may already have fetched.
"""
import datetime
import email.utils
import filecmp
import os
import shutil
import time
from pathlib import Path

from gentoo_zfs_livecd import atomic
from gentoo_zfs_livecd.atomic import link_or_copy
from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.files import beyond_newest
from gentoo_zfs_livecd.lock import FileLock

STAGING_PREFIX = ".staging-"
LOCK_NAME = ".publish.lock"
CURRENT = "current"
# The releases this project published; a folder not named there is never touched.
RECORD = ".gentoo-zfs-livecd-releases"
SIDECAR_SUFFIXES = (".DIGESTS", ".sha256", ".asc", ".CONTENTS.gz")


def release_files(iso, build_info=None) -> list:
    """The ISO, those of its sidecars that exist, and build-info.json if given."""
    iso = Path(iso)
    files = [iso] + [iso.with_name(iso.name + s) for s in SIDECAR_SUFFIXES
                     if iso.with_name(iso.name + s).is_file()]
    return files + ([Path(build_info)] if build_info else [])


def publish(sources, publish_dir, release_name: str, keep: int, latest_file="latest-iso.txt",
            iso_name=None, now=None) -> Path:
    """Publish `sources` as `<publish_dir>/<release_name>/`; return that path.

    The files are hard-linked (copied across file systems) into a hidden staging folder,
    synced, and the folder is renamed into place; then `latest_file` and `current` are
    replaced, and all but the `keep` newest releases (by name) are removed, never the one
    `current` points to. iso_name: the basename listed in `latest_file` (default: the first
    source ending in .iso). now: epoch seconds for the latest file (default: the clock).
    Raises UserError for bad arguments, missing sources or a conflicting existing release.
    """
    publish_dir = Path(publish_dir)
    sources = [Path(s) for s in sources]
    check_release_name(release_name)
    if keep < 1:
        raise UserError(f"keep={keep}: at least the current release must be kept; use keep >= 1")
    iso = pick_iso(sources, iso_name)
    publish_dir.mkdir(parents=True, exist_ok=True)
    lock = publish_dir / LOCK_NAME
    with FileLock(lock, busy=lambda pid, since: f"{lock}: another publish is running in {publish_dir} "
                  f"(pid {pid}, since {since}); wait for it to finish"):
        remove_staging_leftovers(publish_dir)
        require_current_is_ours(publish_dir)
        final = publish_dir / release_name
        if final.exists():
            require_same_release(final, sources)
        else:
            stage_and_rename(sources, publish_dir, release_name)
        size = (final / iso.name).stat().st_size
        write_latest(publish_dir / latest_file, f"{release_name}/{iso.name}", size,
                     time.time() if now is None else now)
        atomic.symlink(release_name, publish_dir / CURRENT)
        fsync_dir(publish_dir)
        prune(publish_dir, keep)
    return final


def check_release_name(name: str) -> None:
    if not name or "/" in name or name.startswith(".") or name in (CURRENT, "..") or "\0" in name:
        raise UserError(f"release name {name!r} is not usable as a directory name; "
                        "use something like a timestamp (20260101T000000Z)")


def pick_iso(sources, iso_name):
    if not sources:
        raise UserError("nothing to publish: the list of sources is empty")
    names = [s.name for s in sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"two sources are named {', '.join(duplicates)}; a release is one flat folder")
    missing = [str(s) for s in sources if not s.is_file()]
    if missing:
        raise UserError(f"cannot publish {', '.join(missing)}: no such file; build it first")
    if iso_name is None:
        isos = [s for s in sources if s.name.endswith(".iso")]
        return isos[0] if isos else sources[0]
    for source in sources:
        if source.name == iso_name:
            return source
    raise UserError(f"iso_name {iso_name!r} is not one of the sources ({', '.join(names)})")


def remove_staging_leftovers(publish_dir: Path) -> None:
    for entry in publish_dir.iterdir():
        if entry.name.startswith(STAGING_PREFIX):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def stage_and_rename(sources, publish_dir: Path, release_name: str) -> None:
    staging = publish_dir / f"{STAGING_PREFIX}{release_name}.{os.getpid()}"
    staging.mkdir()
    for source in sources:
        link_or_copy(source, staging / source.name)
    fsync_dir(staging)
    # Named before it appears: a run killed in between leaves a name without a folder, harmless.
    note_releases(publish_dir, recorded(publish_dir) | {release_name})
    os.rename(staging, publish_dir / release_name)
    fsync_dir(publish_dir)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def require_current_is_ours(publish_dir: Path) -> None:
    current = publish_dir / CURRENT
    if current.exists() and not current.is_symlink():
        raise UserError(f"{current}: not the symlink this project keeps there; move it out of publish.dir "
                        "or choose another publish.dir")


def require_same_release(final: Path, sources) -> None:
    if final.name not in recorded(final.parent):
        raise UserError(f"{final}: a folder this project did not publish has the release's name; "
                        "move it out of publish.dir or choose another publish.dir")
    if not is_same_release(final, sources):
        raise UserError(f"{final}: release {final.name} is already published with different files; "
                        "choose a new release name or remove that directory")


def is_same_release(folder: Path, sources) -> bool:
    """Whether `folder` holds exactly these files, with the same content (a retried publish)."""
    sources = [Path(s) for s in sources]
    if not folder.is_dir() or sorted(p.name for p in folder.iterdir()) != sorted(s.name for s in sources):
        return False
    return all(_same_file(source, folder / source.name) for source in sources)


def _same_file(a: Path, b: Path) -> bool:
    if os.path.samefile(a, b):
        return True
    return a.stat().st_size == b.stat().st_size and filecmp.cmp(a, b, shallow=False)


def latest_text(relative_path: str, size: int, now: float) -> str:
    """Gentoo's latest-*.txt (copy_buildsync.sh): `date -uR`, `ts=`, then `<path> <size>`."""
    stamp = email.utils.format_datetime(datetime.datetime.fromtimestamp(int(now), datetime.timezone.utc))
    return f"# Latest as of {stamp}\n# ts={int(now)}\n{relative_path} {size}\n"


def write_latest(path: Path, relative_path: str, size: int, now: float) -> None:
    atomic.write_text(path, latest_text(relative_path, size, now))


def recorded(publish_dir: Path) -> set:
    try:
        return set((publish_dir / RECORD).read_text().split())
    except FileNotFoundError:
        return set()


def note_releases(publish_dir: Path, names: set) -> None:
    atomic.write_text(publish_dir / RECORD, "".join(f"{name}\n" for name in sorted(names)))


def releases(publish_dir: Path) -> list:
    """Names of the releases this project published and that are still there, oldest first."""
    return sorted(name for name in recorded(publish_dir)
                  if (publish_dir / name).is_dir() and not (publish_dir / name).is_symlink())


def prune(publish_dir: Path, keep: int) -> list:
    """Remove all but the `keep` newest releases and the current one; return the removed names."""
    current = publish_dir / CURRENT
    protected = os.readlink(current) if current.is_symlink() else None
    removed = []
    for name in beyond_newest(releases(publish_dir), keep, newest_key=str, protected={protected}):
        # Renamed first, so a run killed mid-delete leaves only a hidden leftover.
        doomed = publish_dir / f"{STAGING_PREFIX}remove-{name}.{os.getpid()}"
        os.rename(publish_dir / name, doomed)
        shutil.rmtree(doomed)
        removed.append(name)
    if removed:
        note_releases(publish_dir, recorded(publish_dir) - set(removed))
    return removed
