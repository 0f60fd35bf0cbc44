"""Write files so that a reader sees the old content or the new, never a part."""
import os
import tempfile
from pathlib import Path


def write_bytes(path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to a temporary file beside `path`, fsync it and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
