"""Write files so that a reader sees the old content or the new, never a part."""
import contextlib
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def replacing(path, mode: int = 0o644):
    """A binary stream to a temporary file beside `path`, fsynced and renamed over `path` when
    the block ends without an exception (and removed when it does not)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to a temporary file beside `path`, fsync it and rename it into place."""
    with replacing(path, mode) as out:
        out.write(data)


def write_text(path, text: str, mode: int = 0o644) -> None:
    """Text version of `write_bytes` (UTF-8)."""
    write_bytes(path, text.encode(), mode)


def write_if_changed(path, text: str, mode: int = 0o644) -> bool:
    """Write only when the content differs, so an identical rewrite keeps the old mtime."""
    path = Path(path)
    try:
        if path.read_text() == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    write_text(path, text, mode)
    return True


def symlink(target, link) -> None:
    """Point `link` at `target` atomically (a temporary link renamed over the old one)."""
    link = Path(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def link_or_copy(source, target) -> None:
    """Make `target` the same file as `source`: a hard link on the same file system (no data
    copied), else a copy through a temporary name; either way durable once this returns."""
    source, target = Path(source), Path(target)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        with replacing(target) as out, open(source, "rb") as data:
            shutil.copyfileobj(data, out, 1 << 20)
        shutil.copystat(source, target)
        return
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
