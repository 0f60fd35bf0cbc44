"""The one exception type for problems a user can fix: printed as one line, never a traceback."""
import functools


class UserError(Exception):
    """A problem with the user's input or environment, stated in one line.

    The message names the file, key or artifact, what is wrong and what to do. Several
    problems found at once are several lines, one each.
    """

    def __str__(self):
        text = str(self.args[0]) if self.args else ""
        return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


def doit_action(func):
    """Make `func` a doit python-action that reports a UserError as a plain task failure."""
    @functools.wraps(func)
    def action(*args, **kwargs):
        from doit.exceptions import TaskFailed
        try:
            result = func(*args, **kwargs)
        except UserError as err:
            return TaskFailed(str(err))
        return result if isinstance(result, dict) else None
    return action
