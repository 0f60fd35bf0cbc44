"""gentoo-zfs-livecd: Gentoo install ISOs with ZFS, built incrementally with Catalyst and doit.

Task creators, one module per artifact family; dodo.py imports them from here.
"""
from .boottest import task_boottest
from .check import task_check, task_kernel_deep_check
from .compat import task_compat
from .confdirs import task_confdirs
from .digests import task_digests
from .publish import task_publish
from .release_group import task_release
from .seed import task_seed
from .snapshot import task_snapshot
from .specs import task_specs
from .stages import task_installcd_stage1, task_iso, task_stage1, task_stage2, task_stage3
from .verify import task_verify

__all__ = [
    "task_check", "task_kernel_deep_check", "task_snapshot", "task_seed", "task_compat", "task_confdirs", "task_specs",
    "task_stage1", "task_stage2", "task_stage3", "task_installcd_stage1", "task_iso",
    "task_digests", "task_verify", "task_boottest", "task_publish", "task_release",
]
