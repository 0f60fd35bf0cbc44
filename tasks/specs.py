"""`specs`: the spec of every stage, catalyst.conf and catalystrc, rendered with the pins."""
import shutil
from pathlib import Path

from doit import create_after

from gentoo_zfs_livecd import atomic, checkout
from gentoo_zfs_livecd.catalyst import render
from gentoo_zfs_livecd.console import say
from gentoo_zfs_livecd.errors import UserError
from tasks.doit_glue import context
from tasks.doit_glue.actions import doit_action, settings_changed

__all__ = ["task_specs"]

SETTINGS = tuple(dict.fromkeys(render.SPEC_SETTINGS + render.CONF_SETTINGS))


def outputs(build) -> list:
    return [build.paths.spec(stage) for stage in build.chain()] + \
        [build.paths.catalyst_conf, build.paths.catalystrc]


@doit_action
def write_specs(build) -> None:
    texts, problems = render.render_all(build)
    if problems:
        raise UserError("\n".join(problems))
    for stage, text in texts.items():
        atomic.write_if_changed(build.paths.spec(stage), text)
    atomic.write_if_changed(build.paths.catalyst_conf, render.catalyst_conf(build))
    atomic.write_if_changed(build.paths.catalystrc, render.catalystrc(build))
    if build.get("catalyst.pkgcache"):
        for stale in render.stale_kernel_caches(build):
            shutil.rmtree(stale)
            say(f"   specs: removed {stale} (package cache of an earlier kernel config)")


# Created once `snapshot` has run: the pin it writes names the artifacts (`version_stamp: auto`).
@create_after(executed="snapshot")
def task_specs():
    """Render and lint the stage specs, catalyst.conf and catalystrc with the current pins."""
    build = context.current()
    return {
        "actions": [(write_specs, [build.declared(SETTINGS)])],
        # The kernel config's content names the ISO stage's package cache.
        "file_dep": [build.paths.pin("snapshot"), Path(build.get("kernel.config")),
                     *sorted(checkout.SPECS_DIR.glob("*.j2"))],
        "uptodate": [settings_changed(build, SETTINGS)],
        "targets": outputs(build),
        "task_dep": ["check", "snapshot", "confdirs"] +
        (["kernel-deep-check"] if build.get("kernel.source_tree") else []),
        "verbosity": 2,
    }
