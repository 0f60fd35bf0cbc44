"""The one module this project installs: it finds the checkout and hands over to the code there.

The project runs from its checkout: the library (`gentoo_zfs_livecd/`) and the doit layer
(`tasks/`) are never installed, so the code that runs is always the checkout's own, also right
after a `git pull`. Two callers start from wherever Python put this file and need the checkout:

- doit imports its command plugins (`[tool.doit.plugins.command]` of pyproject.toml) before it
  reads dodo.py. It reads that pyproject.toml from the working directory, so that directory is
  the checkout.
- the `gentoo-zfs-livecd-nightly` console script: `--project DIR`, else the checkout this file
  (an editable install) or this venv (`<checkout>/.venv`, a plain install) belongs to.
"""
import argparse
import importlib
import sys
from pathlib import Path

COMMANDS = ("LockedRun", "NightlyCommand", "ReportCommand")


def is_checkout(folder: Path) -> bool:
    return (folder / "dodo.py").is_file() and (folder / "gentoo_zfs_livecd").is_dir()


def home_checkout() -> Path | None:
    """The checkout this installation belongs to, if any."""
    for candidate in (Path(__file__).resolve().parent, Path(sys.prefix).resolve().parent):
        if is_checkout(candidate):
            return candidate
    return None


def use_checkout(folder: Path) -> None:
    """Import the project's code from `folder` from now on."""
    folder = str(folder.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)


def __getattr__(name):
    """doit's command plugins, looked up by name in the checkout doit was started in."""
    if name not in COMMANDS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    here = Path.cwd()
    use_checkout(here if is_checkout(here) else home_checkout() or here)
    return getattr(importlib.import_module("tasks.doit_glue.commands"), name)


def nightly(argv=None) -> int:
    """`gentoo-zfs-livecd-nightly [--project DIR] [--config FILE] [--rehearse]`."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--project", type=Path, default=None)
    known, _ = parser.parse_known_args(argv)
    project = (known.project or home_checkout() or Path.cwd()).absolute()
    if not is_checkout(project):
        print(f"ERROR: {project}: not a gentoo-zfs-livecd checkout (no dodo.py); "
              "name the checkout with --project DIR", file=sys.stderr)
        return 2
    use_checkout(project)
    from tasks.doit_glue.nightly import main
    return main(argv)
