"""Pins: small JSON files holding what a moving input resolved to.

A pin is rewritten only when its content changes, so its mtime and digest move only when the
pinned thing moved, and the stages that depend on it rebuild only then.
"""
import json
from pathlib import Path

from gentoo_zfs_livecd import atomic
from gentoo_zfs_livecd.errors import UserError


def read(path) -> dict | None:
    """The pin at `path`, or None when it does not exist yet; a damaged one is a UserError."""
    try:
        value = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise UserError(f"{path}: damaged pin (not a JSON object); delete it and run again "
                        "(the task that writes it resolves it anew)")
    return value


def write(path, value: dict) -> bool:
    """Store `value`; True when the pin changed."""
    return atomic.write_if_changed(path, json.dumps(value, indent=2, sort_keys=True) + "\n")
