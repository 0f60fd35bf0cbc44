"""doit python-actions of this project: a UserError is a plain task failure, printed as one line."""
import errno
import functools

from doit.exceptions import TaskFailed
from doit.tools import config_changed

from gentoo_zfs_livecd.errors import UserError


# A disk that fills up (or turns read-only) under a running task is the host's state, not a bug.
STORAGE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def doit_action(func):
    """Make `func` a doit python-action that reports a UserError, or a full or read-only disk,
    as a plain task failure."""
    @functools.wraps(func)
    def action(*args, **kwargs):
        try:
            result = func(*args, **kwargs)
        except UserError as err:
            return TaskFailed(str(err))
        except OSError as err:
            if err.errno not in STORAGE_ERRORS:
                raise
            return TaskFailed(f"{err.filename or 'the build'}: {err.strerror}; free space (or make it "
                              "writable) and run again: finished tasks are kept")
        return result if isinstance(result, dict) else None
    return action


def settings_changed(build, keys):
    """doit's up-to-date check on the settings a task declares (Nikola's `kw` + config_changed):
    a declared setting that changes reruns exactly the tasks that read it."""
    return config_changed({key: build.get(key) for key in sorted(keys)})
