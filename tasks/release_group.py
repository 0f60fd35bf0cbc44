"""`release`: what a plain `doit` builds: the ISO and its checks, never publishing."""
from . import context

__all__ = ["task_release"]


def task_release():
    """Build the ISO and check it (the default: iso, digests, verify, boottest)."""
    context.current()
    return {"actions": None, "task_dep": ["iso"]}
