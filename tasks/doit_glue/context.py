"""The build being run: which config, which build folder, rehearsal or real.

Read from doit's command-line variables (`config=PATH`, `rehearse=1`, `refresh=1`) once per
process. Nothing here touches the network or reads big files: `doit list` stays fast.
"""
import contextlib
from functools import cache
from pathlib import Path

from gentoo_zfs_livecd import checkout, console, project
from gentoo_zfs_livecd.errors import UserError


# The command-line variables this project reads; any other is a typo (`rehaerse=1`) that
# would otherwise start a real build.
VARIABLES = ("config", "rehearse", "refresh")


def _var(name, default=None):
    from doit import get_var
    return get_var(name, default)


def unknown_variables() -> list:
    from doit import doit_cmd
    return sorted(set(doit_cmd._CMDLINE_VARS or {}) - set(VARIABLES))


def _flag(name) -> bool:
    return str(_var(name, "0")).lower() in ("1", "yes", "true", "on")


def config_path() -> Path:
    return Path(_var("config", checkout.DEFAULT_CONFIG)).absolute()


def rehearsal() -> bool:
    return _flag("rehearse")


def refresh() -> bool:
    return _flag("refresh")


def current() -> project.Build:
    """The build named on doit's command line, as its pins now name it (a pinned `stable`
    commit moves `version_stamp: auto`; the stage pins `specs` writes name each stage's artifact)."""
    path, rehearse = config_path(), rehearsal()
    folder = project.Paths.pin_in(project.build_dir(path, rehearse), "snapshot").parent
    texts = []
    for pin in [folder / "snapshot.json", *sorted(folder.glob("stage-*.json"))]:
        try:
            texts.append((pin.name, pin.read_text()))
        except FileNotFoundError:
            texts.append((pin.name, None))
    return _build(path, rehearse, tuple(texts))


def _check_writable(folder: Path) -> None:
    """A build folder doit cannot write to fails at the end of a run, after the work: say so first.
    The file system reserves the blocks at write(), so a full disk answers without an fsync."""
    import tempfile
    try:
        with tempfile.TemporaryFile(dir=folder) as probe:
            probe.write(b"\0" * 65536)
            probe.flush()
    except OSError as err:
        raise UserError(f"{folder}: the build folder cannot be written ({err.strerror}); "
                        "free space or make it writable, then run again") from None


def _check_database(database: Path) -> None:
    """doit opens its database with a traceback when it is not one; one line instead."""
    import sqlite3
    if not database.exists():
        return
    try:
        with contextlib.closing(sqlite3.connect(database)) as connection:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as err:
        raise UserError(f"{database}: doit's database is damaged ({err}); delete it and run again") from None


@cache
def _build(path: Path, rehearse: bool, pin_texts: tuple) -> project.Build:
    """A bad config is one line, no traceback."""
    from doit.exceptions import InvalidDodoFile
    console.set_rehearsal(rehearse)
    try:
        return project.make_build(path, rehearse)
    except UserError as err:
        raise InvalidDodoFile(f"{console.prefix()}{err}") from None


def doit_config() -> dict:
    """DOIT_CONFIG for dodo.py: the database inside the build folder, sqlite3, our checker."""
    from doit.exceptions import InvalidDodoFile
    console.set_rehearsal(rehearsal())
    unknown = unknown_variables()
    if unknown:
        raise InvalidDodoFile(f"{console.prefix()}unknown variable {unknown[0]}=...; "
                              f"this project reads only {', '.join(name + '=' for name in VARIABLES)}")
    folder = project.build_dir(config_path(), rehearsal())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _check_writable(folder)
        _check_database(folder / "doit.sqlite")
    except UserError as err:
        raise InvalidDodoFile(f"{console.prefix()}{err}") from None
    from tasks.doit_glue.checker import recording_in
    from tasks.doit_glue.reporter import locking
    return {
        "backend": "sqlite3",
        "dep_file": str(folder / "doit.sqlite"),
        "check_file_uptodate": recording_in(project.Paths.stamps_in(folder)),
        "reporter": locking(current),  # every run takes the build lock, however doit was started
        "default_tasks": ["release"],
        "minversion": "0.37.0",
        "par_type": "thread",
        "forget_disable_default": True,
        "verbosity": 2,
    }
