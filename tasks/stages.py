"""The Catalyst stages: stage1-3, installcd-stage1 and the ISO (installcd-stage2).

Each stage's inputs are its rendered spec, the artifact it starts from (or the seed pin), its
stage pin (the commit it is built from and its stamp, which `specs` moves only when the stage
must rebuild), runner.conf and every file its spec names; its targets are exactly the files
Catalyst writes. The creators run after `specs`, when the stage pins are known.
"""
from pathlib import Path

from doit import create_after

from gentoo_zfs_livecd.paths import STAGE_TARGETS
from tasks import confdirs
from tasks.doit_glue import context
from tasks.doit_glue.actions import doit_action

__all__ = ["task_stage1", "task_stage2", "task_stage3", "task_installcd_stage1", "task_iso"]


def tree(path) -> list:
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []


def files_named_by(build, stage: str) -> list:
    """Files a stage's spec points at, whose content is an input of that stage."""
    if STAGE_TARGETS[stage] in ("stage1", "stage2", "stage3"):
        files = confdirs.rendered_files(build, "stages")
    else:
        files = confdirs.rendered_files(build, "isos")
    if stage == "iso":
        for key in ("kernel.config", "livecd.fsscript", "livecd.root_overlay", "livecd.overlay"):
            files += tree(build.get(key))
    for repo in build.get("repos"):
        files += tree(repo)
    return files


def inputs(build, stage: str) -> list:
    paths = build.paths
    before = build.previous(stage)
    files = [paths.spec(stage), paths.catalyst_conf, paths.catalystrc, paths.stage_pin(stage),
             paths.tarball(before) if before else paths.pin("seed")]
    return files + files_named_by(build, stage)


SETTINGS = ("stages", "catalyst.command")


def holdings_record(build, stage: str) -> dict:
    """Where and with what the runner notes what the built stage holds."""
    from gentoo_zfs_livecd import pins
    paths = build.paths
    pin = pins.read(paths.stage_pin(stage))
    return {"file": str(paths.holdings(stage)), "snapshot": pin["snapshot"], "inputs": pin["inputs"],
            "bare_repo": str(paths.bare_repo), "tarball": str(paths.tarball(stage)),
            "iso": str(paths.iso) if stage == "iso" else None}


@doit_action
def build_stage(build, stage: str, files: list) -> None:
    from gentoo_zfs_livecd import pins, stamps
    from gentoo_zfs_livecd.catalyst import runner
    paths = build.paths
    commit = pins.read(paths.stage_pin(stage))["snapshot"]
    runner.ensure_snapshot(build.catalyst, build.rehearsal, commit, paths.snapshot(commit), paths.logs)
    runner.build_stage(
        task=stage, catalyst=build.catalyst, rehearsal=build.rehearsal,
        spec=str(paths.spec(stage)),
        targets=[str(t) for t in paths.targets(stage)],
        inputs=stamps.signature(paths.stamps, files), attempt_file=str(paths.attempt(stage)),
        stamp_store=str(paths.stamps), logs=str(paths.logs), history_file=str(paths.history),
        record=holdings_record(build, stage))


def stage_task(stage: str):
    build = context.current()
    if stage not in build.chain():
        return
    before = build.previous(stage)
    files = inputs(build, stage)
    yield {
        "basename": stage,
        "actions": [(build_stage, [build.declared(SETTINGS), stage, [str(f) for f in files]])],
        "file_dep": files,
        "targets": build.paths.targets(stage),
        "task_dep": ["specs", "compat", before or "seed"],
        "verbosity": 2,
    }


@create_after(executed="specs")
def task_stage1():
    """Build stage1 from the seed stage3 (catalyst -f stage1.spec)."""
    yield from stage_task("stage1")


@create_after(executed="specs")
def task_stage2():
    """Build stage2 from stage1 (only when `stages` lists it)."""
    yield from stage_task("stage2")


@create_after(executed="specs")
def task_stage3():
    """Build stage3, the base system of the install CD."""
    yield from stage_task("stage3")


# The creator name cannot hold "-", so the task name is declared.
@create_after(executed="specs", creates=["installcd-stage1"])
def task_installcd_stage1():
    """Build installcd-stage1: the live CD's packages (livecd-stage1)."""
    yield from stage_task("installcd-stage1")


@create_after(executed="specs")
def task_iso():
    """Build the ISO: kernel, ZFS against it, squashfs (installcd-stage2, livecd-stage2)."""
    yield from stage_task("iso")
