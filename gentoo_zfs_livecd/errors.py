"""The one exception type for problems a user can fix: printed as one line, never a traceback."""
class UserError(Exception):
    """A problem with the user's input or environment, stated in one line.

    The message names the file, key or artifact, what is wrong and what to do. Several
    problems found at once are several lines, one each.
    """

    def __str__(self):
        text = str(self.args[0]) if self.args else ""
        return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())

