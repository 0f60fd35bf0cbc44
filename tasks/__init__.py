"""gentoo-zfs-livecd: Gentoo install ISOs with ZFS, built incrementally with Catalyst and doit.

Task creators, one module per artifact family; dodo.py imports them from here.
"""
from tasks.boottest import task_boottest
from tasks.check import task_check, task_kernel_deep_check
from tasks.compat import task_compat
from tasks.confdirs import task_confdirs
from tasks.digests import task_digests
from tasks.publish import task_publish
from tasks.release import task_release
from tasks.seed import task_seed
from tasks.snapshot import task_snapshot
from tasks.specs import task_specs
from tasks.stages import (
    task_installcd_stage1,
    task_iso,
    task_stage1,
    task_stage2,
    task_stage3,
)
from tasks.verify import task_verify

__all__ = [
    "task_check", "task_kernel_deep_check", "task_snapshot", "task_seed", "task_compat", "task_confdirs", "task_specs",
    "task_stage1", "task_stage2", "task_stage3", "task_installcd_stage1", "task_iso",
    "task_digests", "task_verify", "task_boottest", "task_publish", "task_release",
]
