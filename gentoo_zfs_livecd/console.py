"""The build's own printed lines: one place that labels every line of a rehearsal."""
import sys

_label = [""]


def set_rehearsal(rehearsal: bool) -> None:
    """Label every line printed from now on as a rehearsal's (or stop labelling)."""
    _label[0] = "[rehearsal] " if rehearsal else ""


def prefix() -> str:
    return _label[0]


def say(text: str, stream=None) -> None:
    """Print one line of the build's own output (labelled when rehearsing)."""
    stream = stream or sys.stdout
    stream.write(f"{prefix()}{text}\n")
    stream.flush()
