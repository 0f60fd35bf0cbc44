"""`confdirs`: the portage confdirs Catalyst copies into its chroots, plus generated files.

Copies of `portage.stages_confdir` and `portage.isos_confdir` under the build folder, so that a
pinned kernel (`kernel.version`) can add its mask without writing into the source tree.
"""
import shutil
from pathlib import Path

from gentoo_zfs_livecd import atomic, pins
from tasks.doit_glue import context
from tasks.doit_glue.actions import doit_action, settings_changed

__all__ = ["task_confdirs", "rendered_files"]

KERNEL_MASK = Path("package.mask") / "zz-gentoo-zfs-livecd-kernel"
SETTINGS = ("portage.stages_confdir", "portage.isos_confdir", "kernel.version")


def source_files(root: Path) -> list:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


def kernel_mask(build) -> str | None:
    """Mask of every kernel newer than the one `kernel.version` selects (found by `compat`)."""
    if not build.get("kernel.version"):
        return None
    compat = pins.read(build.paths.pin("compat")) or {"mask_lines": []}
    return "".join(f"{line}\n" for line in compat["mask_lines"])


def rendered_files(build, name: str) -> list:
    """The files of the rendered confdir `name` (`stages` or `isos`)."""
    source = Path(build.get(f"portage.{name}_confdir"))
    target = build.paths.confdir(name)
    files = [target / p.relative_to(source) for p in source_files(source)]
    if name == "isos" and build.get("kernel.version"):
        files.append(target / KERNEL_MASK)
    return files


@doit_action
def render_confdir(build, name: str) -> None:
    source, target = Path(build.get(f"portage.{name}_confdir")), build.paths.confdir(name)
    wanted = set(rendered_files(build, name))
    for path in source_files(source):
        copy = target / path.relative_to(source)
        atomic.write_if_changed(copy, path.read_text(), mode=path.stat().st_mode & 0o777)
    if name == "isos" and build.get("kernel.version"):
        atomic.write_if_changed(target / KERNEL_MASK, kernel_mask(build))
    for path in source_files(target):
        if path not in wanted:
            path.unlink()
    for folder in sorted((p for p in target.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            shutil.rmtree(folder)


def task_confdirs():
    """Render the portage confdirs (stages, isos) that the specs point Catalyst at."""
    build = context.current()
    for name in ("stages", "isos"):
        yield {
            "name": name,
            "actions": [(render_confdir, [build.declared(SETTINGS), name])],
            "file_dep": source_files(Path(build.get(f"portage.{name}_confdir"))) +
            ([build.paths.pin("compat")] if name == "isos" and build.get("kernel.version") else []),
            "targets": rendered_files(build, name),
            "uptodate": [settings_changed(build, SETTINGS)],
            "task_dep": ["compat"],
        }
