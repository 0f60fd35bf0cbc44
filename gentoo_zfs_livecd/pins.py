"""Pins: small JSON files holding what a moving input resolved to.

A pin is rewritten only when its content changes, so its mtime and digest move only when the
pinned thing moved, and the stages that depend on it rebuild only then.
"""
import json
from pathlib import Path

from gentoo_zfs_livecd import atomic


def read(path) -> dict | None:
    """The pin at `path`, or None when it does not exist yet."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None


def write(path, value: dict) -> bool:
    """Store `value`; True when the pin changed."""
    return atomic.write_if_changed(path, json.dumps(value, indent=2, sort_keys=True) + "\n")
