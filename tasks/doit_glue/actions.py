"""doit python-actions of this project: a UserError is a plain task failure, printed as one line."""
import functools

from doit.exceptions import TaskFailed
from doit.tools import config_changed

from gentoo_zfs_livecd.errors import UserError


def doit_action(func):
    """Make `func` a doit python-action that reports a UserError as a plain task failure."""
    @functools.wraps(func)
    def action(*args, **kwargs):
        try:
            result = func(*args, **kwargs)
        except UserError as err:
            return TaskFailed(str(err))
        return result if isinstance(result, dict) else None
    return action


def settings_changed(build, keys):
    """doit's up-to-date check on the settings a task declares (Nikola's `kw` + config_changed):
    a declared setting that changes reruns exactly the tasks that read it."""
    return config_changed({key: build.get(key) for key in sorted(keys)})
