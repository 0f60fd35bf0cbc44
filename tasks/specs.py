"""`specs`: the spec of every stage, catalyst.conf and catalystrc, rendered with the pins."""
from gentoo_zfs_livecd import atomic, checkout
from gentoo_zfs_livecd.errors import UserError
from tasks.doit_glue import context
from tasks.doit_glue.actions import doit_action

__all__ = ["task_specs"]


def outputs(build) -> list:
    return [build.paths.spec(stage) for stage in build.chain()] + \
        [build.paths.catalyst_conf, build.paths.catalystrc]


@doit_action
def write_specs() -> None:
    from gentoo_zfs_livecd.catalyst import render
    build = context.current()
    texts, problems = render.render_all(build)
    if problems:
        raise UserError("\n".join(problems))
    for stage, text in texts.items():
        atomic.write_if_changed(build.paths.spec(stage), text)
    atomic.write_if_changed(build.paths.catalyst_conf, render.catalyst_conf(build))
    atomic.write_if_changed(build.paths.catalystrc, render.catalystrc(build))


def task_specs():
    """Render and lint the stage specs, catalyst.conf and catalystrc with the current pins."""
    build = context.current()
    return {
        "actions": [write_specs],
        "file_dep": [build.config.path, build.paths.pin("snapshot"), *sorted(checkout.SPECS_DIR.glob("*.j2"))],
        "targets": outputs(build),
        "task_dep": ["check", "snapshot", "confdirs"] +
        (["kernel-deep-check"] if build.get("kernel.source_tree") else []),
        "verbosity": 2,
    }
