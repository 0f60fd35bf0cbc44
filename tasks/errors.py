"""The one exception type for problems a user can fix: printed as one line, never a traceback."""


class UserError(Exception):
    """A problem with the user's input or environment, stated in one line.

    The message names the file, key or artifact, what is wrong and what to do.
    """

    def __str__(self):
        return " ".join(str(self.args[0]).split()) if self.args else ""
