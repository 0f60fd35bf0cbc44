"""The build being run: which config, which build folder, rehearsal or real.

Read from doit's command-line variables (`config=PATH`, `rehearse=1`, `refresh=1`) once per
process. Nothing here touches the network or reads big files: `doit list` stays fast.
"""
import sys
from functools import cache
from pathlib import Path
from typing import NamedTuple

from . import config as config_module
from . import pins
from .paths import Paths

ROOT = Path(__file__).resolve().parent.parent
SPECS_DIR = ROOT / "specs"
INSTALL_CD_STAGES = ["installcd-stage1", "iso"]
PENDING_STAMP = "pending"


def _var(name, default=None):
    from doit import get_var
    return get_var(name, default)


def _flag(name) -> bool:
    return str(_var(name, "0")).lower() in ("1", "yes", "true", "on")


def config_path() -> Path:
    return Path(_var("config", ROOT / "config.yaml")).absolute()


def rehearsal() -> bool:
    return _flag("rehearse")


def refresh() -> bool:
    return _flag("refresh")


def build_dir(path: Path | None = None, rehearse: bool | None = None) -> Path:
    """`build/<config stem>/`, or `build/rehearsal/<config stem>/` for a rehearsal."""
    path = path or config_path()
    rehearse = rehearsal() if rehearse is None else rehearse
    base = ROOT / "build"
    return (base / "rehearsal" / path.stem) if rehearse else (base / path.stem)


class Build(NamedTuple):
    """One build's settings and paths."""
    config: config_module.Config
    paths: Paths
    rehearsal: bool
    datestamp: str  # YYYYMMDD of the snapshot commit, for short fields such as the volume id

    def get(self, key):
        return self.config.get(key)

    @property
    def catalyst_command(self) -> list:
        if self.rehearsal:
            return [sys.executable, "-m", "tasks.emulator"]
        return self.config.get("catalyst.command")

    @property
    def snapshot_pin(self) -> dict | None:
        return pins.read(self.paths.pin("snapshot"))

    def chain(self) -> list:
        """The stage tasks in build order: the configured stages, then the two install-CD stages."""
        return list(self.get("stages")) + INSTALL_CD_STAGES

    def previous(self, stage: str) -> str | None:
        """The stage whose output seeds `stage` (None: the downloaded or given seed)."""
        order = self.chain()
        index = order.index(stage)
        return order[index - 1] if index else None

    def expand(self, key) -> str:
        return config_module.expand(self.get(key), self.paths.version_stamp, self.datestamp)


def make_build(path: Path, rehearse: bool) -> Build:
    """Load the config at `path` and derive every path of its build."""
    folder = build_dir(path, rehearse)
    config = config_module.load(path, cache=folder / "config.json")
    storedir = Path(config.get("storedir"))
    publish_dir = Path(config.get("publish.dir"))
    if rehearse:
        storedir, publish_dir = folder / "storedir", folder / "publish"
    pin = pins.read(Paths.pin_in(folder, "snapshot"))
    datestamp = pin["stamp"][:8] if pin else PENDING_STAMP
    stamp = config.get("version_stamp")
    if stamp == "auto":
        stamp = pin["stamp"] if pin else PENDING_STAMP
    paths = Paths(
        build_dir=folder,
        storedir=storedir,
        rel_type=config.get("rel_type"),
        subarch=config.get("subarch"),
        version_stamp=stamp,
        tarball_ext=config_module.COMPRESSION_MODES[config.get("compression_mode")],
        iso_name=config_module.expand(config.get("livecd.iso"), stamp, datestamp),
        flavour=config.get("seed.flavour"),
        publish_dir=publish_dir,
    )
    return Build(config, paths, rehearse, datestamp)


@cache
def current() -> Build:
    """The build named on doit's command line; a bad config is one line, no traceback."""
    from doit.exceptions import InvalidDodoFile

    from .errors import UserError
    try:
        return make_build(config_path(), rehearsal())
    except UserError as err:
        label = "[rehearsal] " if rehearsal() else ""
        raise InvalidDodoFile(f"{label}{err}") from None


def doit_config() -> dict:
    """DOIT_CONFIG for dodo.py: the database inside the build folder, sqlite3, our checker."""
    folder = build_dir()
    folder.mkdir(parents=True, exist_ok=True)
    from .checker import StampChecker
    from .reporter import BuildReporter
    return {
        "backend": "sqlite3",
        "dep_file": str(folder / "doit.sqlite"),
        "check_file_uptodate": StampChecker,
        "reporter": BuildReporter,
        "default_tasks": ["release"],
        "minversion": "0.37.0",
        "par_type": "thread",
        "forget_disable_default": True,
        "verbosity": 2,
    }
