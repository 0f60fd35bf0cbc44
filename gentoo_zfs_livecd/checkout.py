"""The checkout's own folders: the one place that knows where the project's files are.

The library is never installed (gentoo_zfs_livecd_launcher.py), so it always runs from the
checkout, whose top holds dodo.py, config.yaml, specs/, kernel-configs/ and overlay/.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DODO = ROOT / "dodo.py"
DEFAULT_CONFIG = ROOT / "config.yaml"
SPECS_DIR = ROOT / "specs"
ZFS_KERNEL_RANGES = ROOT / "kernel-configs" / "zfs-kernel-ranges.json"
EMULATOR = ROOT / "gentoo_zfs_livecd" / "rehearsal" / "catalyst"
