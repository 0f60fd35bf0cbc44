"""`verify`: proof that the ISO boots the way it should and carries ZFS for its kernel."""
import hashlib
import json
import subprocess

from doit import create_after

from gentoo_zfs_livecd import atomic, pins
from gentoo_zfs_livecd.console import say
from tasks.doit_glue import context
from tasks.doit_glue.actions import doit_action, settings_changed

__all__ = ["task_verify"]

SETTINGS = ("livecd.volid", "stages", "catalyst.command")


def catalyst_version(build) -> str:
    try:
        return subprocess.run(build.catalyst.version(), capture_output=True, text=True,
                              timeout=60).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def build_times(build) -> dict:
    """When each stage's artifacts were produced (from the stage's last successful attempt)."""
    times = {}
    for stage in build.chain():
        attempt = pins.read(build.paths.attempt(stage)) or {}
        produced = attempt.get("produced") or {}
        if produced:
            times[stage] = max(stamp["mtime_ns"] for stamp in produced.values()) // 10**9
    return times


def build_info(build, facts) -> dict:
    from gentoo_zfs_livecd.release import digestfile
    paths = build.paths
    seed = pins.read(paths.pin("seed")) or {}
    digests = digestfile.parse(paths.sidecar(".DIGESTS").read_text())
    return {
        **facts.as_dict(),
        "iso_name": paths.iso_name,
        "digests": digests.get(paths.iso_name, {}),
        "version_stamp": paths.version_stamp,
        "snapshot": pins.read(paths.pin("snapshot")),
        "seed": {"name": seed.get("name"), "sha512": seed.get("sha512")},
        "compat": pins.read(paths.pin("compat")),
        "specs": {stage: hashlib.sha256(paths.spec(stage).read_bytes()).hexdigest()
                  for stage in build.chain()},
        "catalyst": catalyst_version(build),
        "built": build_times(build),
        "rehearsal": build.rehearsal,
    }


@doit_action
def verify_iso(build) -> None:
    from gentoo_zfs_livecd.iso import inspection
    facts = inspection.verify_iso(build.paths.iso, build.expand("livecd.volid"))
    atomic.write_text(build.paths.build_info, json.dumps(build_info(build, facts), indent=2) + "\n")
    say(f"   verify: {facts.volume_id}: Linux {facts.kernel_release}, ZFS {facts.zfs_version}")


@create_after(executed="specs")
def task_verify():
    """Check the ISO: volume id, boot files, one kernel, zfs.ko for it; write build-info.json."""
    build = context.current()
    paths = build.paths
    return {
        "actions": [(verify_iso, [build.declared(SETTINGS)])],
        "uptodate": [settings_changed(build, SETTINGS)],
        "file_dep": [paths.iso, paths.sidecar(".DIGESTS"), paths.pin("snapshot"), paths.pin("seed")],
        "targets": [paths.build_info],
        "task_dep": ["digests"],
        "verbosity": 2,
    }
