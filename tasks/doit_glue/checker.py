"""doit's file checker for this build: small inputs by content, large artifacts by stamp.

doit's md5 checker re-hashes a touched multi-GB file on every run until its consumer reruns
(doit-notes.md §2.1); the stamp record (tasks/stamps.py) hashes it once and remembers.
"""
import os
from pathlib import Path

from doit.dependency import FileChangedChecker


class StampChecker(FileChangedChecker):
    """State is (mtime, size, digest); only a size or digest change counts as modified."""
    store: Path  # the stamp record; set by `recording_in`, since doit makes the checker itself

    def digest(self, path, stat) -> str:
        from gentoo_zfs_livecd import stamps
        return stamps.content_digest(self.store, path, stat)

    def check_modified(self, file_path, file_stat, state):
        mtime, size, digest = state
        if file_stat.st_size != size:
            return True
        if file_stat.st_mtime == mtime:
            return False
        return self.digest(file_path, file_stat) != digest

    def get_state(self, dep, current_state):
        stat = os.stat(dep)
        if current_state and current_state[0] == stat.st_mtime and current_state[1] == stat.st_size:
            return None
        return stat.st_mtime, stat.st_size, self.digest(dep, stat)


def recording_in(store: Path) -> type:
    """The checker class doit is given: StampChecker with its stamp record."""
    return type("StampChecker", (StampChecker,), {"store": store})
