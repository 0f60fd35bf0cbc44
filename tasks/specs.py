"""`specs`: the spec of every stage, catalyst.conf and catalystrc, rendered with the pins.

When the snapshot pin moves, each stage is kept (built from the commit it was built from) or
rebuilt from the new one (gentoo_zfs_livecd.rebuild): the decision is printed, one line per
stage, and written as the stage's pin, which its spec and its artifacts' names follow.
"""
import hashlib
import json
import shutil
from pathlib import Path

from doit import create_after

from gentoo_zfs_livecd import atomic, checkout, pins, stamps
from gentoo_zfs_livecd.catalyst import render
from gentoo_zfs_livecd.config import expand
from gentoo_zfs_livecd.console import say
from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.project import current_stamp
from tasks import stages
from tasks.doit_glue import context
from tasks.doit_glue.actions import doit_action, settings_changed

__all__ = ["task_specs"]

SETTINGS = tuple(dict.fromkeys(render.SPEC_SETTINGS + render.CONF_SETTINGS + (
    "version_stamp", "livecd.iso", "snapshot.rebuild", "snapshot.full_rebuild_days",
    "portage.stages_confdir", "portage.isos_confdir", "kernel.version")))
# Stands for every pin in the rendering that signs a stage's own inputs.
PLACEHOLDER_PIN = {"snapshot": render.PLACEHOLDER_SHA, "stamp": "00000000T000000Z", "datestamp": "00000000"}


def own_input_files(build, stage: str) -> list:
    """The files a stage reads besides the tree and the stage before it."""
    return stages.files_named_by(build, stage) + ([] if build.previous(stage) else [build.paths.pin("seed")])


def outputs(build) -> list:
    return [build.paths.spec(stage) for stage in build.chain()] + \
        [build.paths.stage_pin(stage) for stage in build.chain()] + \
        [build.paths.catalyst_conf, build.paths.catalystrc, build.paths.decisions]


def with_pins(build, stage_pins: dict):
    """The build with every stage's artifacts named by `stage_pins`."""
    iso = stage_pins["iso"]
    iso_name = expand(build.get("livecd.iso"), iso["stamp"], iso["datestamp"])
    return build._replace(paths=build.paths.with_stage_stamps(
        {stage: pin["stamp"] for stage, pin in stage_pins.items()}, iso_name))


def rendered(build, stage_pins: dict) -> dict:
    texts, problems = render.render_all(with_pins(build, stage_pins), stage_pins=stage_pins)
    if problems:
        raise UserError("\n".join(problems))
    return texts


def own_inputs(build) -> dict:
    """{stage: signature of its own inputs}: its spec rendered with placeholder pins,
    catalyst.conf, catalystrc and the files its spec names."""
    chain = build.chain()
    texts = rendered(build, {stage: PLACEHOLDER_PIN for stage in chain})
    common = render.catalyst_conf(build) + render.catalystrc(build) + str(build.get("version_stamp"))
    signatures = {}
    for stage in chain:
        files = stamps.signature(build.paths.stamps, own_input_files(build, stage))
        signatures[stage] = hashlib.sha256(f"{texts[stage]}\0{common}\0{files}".encode()).hexdigest()
    return signatures


def decide(build, signatures: dict) -> list:
    from gentoo_zfs_livecd.rebuild import record, tree
    snapshot = build.snapshot_pin
    return record.decide_stages(build.paths, build.chain(), signatures, snapshot["sha"],
                                tree.GitTree(build.paths.bare_repo), build.get("snapshot.rebuild"),
                                build.get("snapshot.full_rebuild_days"))


def keep_commits(build, stage_pins: dict) -> None:
    """The commits the stages are built from stay in the bare repository; no other one."""
    from gentoo_zfs_livecd.rebuild import tree
    commits = {pin["snapshot"] for pin in stage_pins.values()}
    for sha in sorted(commits):
        tree.keep_reachable(build.paths.bare_repo, sha)
    tree.release_pins(build.paths.bare_repo, commits)


@doit_action
def write_specs(build) -> None:
    from gentoo_zfs_livecd.rebuild import record
    paths, snapshot = build.paths, build.snapshot_pin
    if snapshot is None:
        raise UserError(f"{paths.pin('snapshot')}: no snapshot pin yet; run `doit snapshot`")
    signatures = own_inputs(build)
    decisions = decide(build, signatures)
    new_stamp = current_stamp(build.config, snapshot)
    stage_pins = {d.stage: record.stage_pin(d, signatures[d.stage], pins.read(paths.stage_pin(d.stage)),
                                            new_stamp, snapshot) for d in decisions}
    texts = rendered(build, stage_pins)
    for decision in decisions:
        say(f"   {decision.line}")
    keep_commits(build, stage_pins)
    for stage, pin in stage_pins.items():
        pins.write(paths.stage_pin(stage), pin)
    atomic.write_if_changed(paths.decisions, json.dumps([d.to_json() for d in decisions], indent=1) + "\n")
    for stage, text in texts.items():
        atomic.write_if_changed(paths.spec(stage), text)
    atomic.write_if_changed(paths.catalyst_conf, render.catalyst_conf(build))
    atomic.write_if_changed(paths.catalystrc, render.catalystrc(build))
    if build.get("catalyst.pkgcache"):
        for stale in render.stale_kernel_caches(build):
            shutil.rmtree(stale)
            say(f"   specs: removed {stale} (package cache of an earlier kernel config)")


# Created once `snapshot` has run: the pin it writes names the artifacts (`version_stamp: auto`).
@create_after(executed="snapshot")
def task_specs():
    """Decide which stages the tree's change reaches; render and lint their specs, catalyst.conf and catalystrc."""
    build = context.current()
    own_files = dict.fromkeys(f for stage in build.chain() for f in own_input_files(build, stage))
    return {
        "actions": [(write_specs, [build.declared(SETTINGS)])],
        # The kernel config's content names the ISO stage's package cache.
        "file_dep": [build.paths.pin("snapshot"), Path(build.get("kernel.config")),
                     *sorted(checkout.SPECS_DIR.glob("*.j2")), *own_files],
        "uptodate": [settings_changed(build, SETTINGS)],
        "targets": outputs(build),
        "task_dep": ["check", "snapshot", "confdirs"] +
        (["kernel-deep-check"] if build.get("kernel.source_tree") else []),
        "verbosity": 2,
    }
