"""doit python-actions of this project: a UserError is a plain task failure, printed as one line."""
import functools

from doit.exceptions import TaskFailed

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
