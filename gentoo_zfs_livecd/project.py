"""The project and one build of it: the checkout's folders, a config's build folder and paths.

Nothing here touches the network or reads big files: `doit list` stays fast.
"""
import sys
from pathlib import Path
from typing import NamedTuple

from gentoo_zfs_livecd import config as config_module
from gentoo_zfs_livecd import pins
from gentoo_zfs_livecd.catalyst.argv import CatalystArgv
from gentoo_zfs_livecd.catalyst.grammar import tarball_extension
from gentoo_zfs_livecd.checkout import EMULATOR, ROOT
from gentoo_zfs_livecd.paths import Paths

INSTALL_CD_STAGES = ["installcd-stage1", "iso"]
PENDING_STAMP = "pending"


def build_dir(path: Path, rehearse: bool) -> Path:
    """`build/<config stem>/`, or `build/rehearsal/<config stem>/` for a rehearsal."""
    base = ROOT / "build"
    return (base / "rehearsal" / path.stem) if rehearse else (base / path.stem)


def chain(config) -> list:
    """The stage tasks in build order: the configured stages, then the two install-CD stages."""
    return list(config.get("stages")) + INSTALL_CD_STAGES


class Build(NamedTuple):
    """One build's settings and paths."""
    config: config_module.Config
    paths: Paths
    rehearsal: bool
    datestamp: str  # YYYYMMDD of the snapshot commit, for short fields such as the volume id

    def get(self, key):
        return self.config.get(key)

    def declared(self, keys) -> "Build":
        """This build with only `keys` readable: what one task's actions are handed."""
        return self._replace(config=self.config.declared(keys))

    @property
    def catalyst(self) -> CatalystArgv:
        """Catalyst's command lines for this build (the emulator's when rehearsing)."""
        command = (sys.executable, str(EMULATOR)) if self.rehearsal else tuple(self.config.get("catalyst.command"))
        return CatalystArgv(command, str(self.paths.catalyst_conf))

    @property
    def snapshot_pin(self) -> dict | None:
        return pins.read(self.paths.pin("snapshot"))

    def chain(self) -> list:
        return chain(self.config)

    def previous(self, stage: str) -> str | None:
        """The stage whose output seeds `stage` (None: the downloaded or given seed)."""
        order = self.chain()
        index = order.index(stage)
        return order[index - 1] if index else None

    def expand(self, key) -> str:
        return config_module.expand(self.get(key), self.paths.version_stamp, self.datestamp)


def current_stamp(config, snapshot_pin: dict | None) -> str:
    """The stamp a stage built now gets: the configured one, or the snapshot commit's (`auto`)."""
    stamp = config.get("version_stamp")
    if stamp == "auto":
        return snapshot_pin["stamp"] if snapshot_pin else PENDING_STAMP
    return stamp


def stage_pins(folder: Path, config) -> dict:
    """{stage: pin} of the stages that have a stage pin (what each is built from)."""
    found = {stage: pins.read(Paths.pin_in(folder, f"stage-{stage}")) for stage in chain(config)}
    return {stage: pin for stage, pin in found.items() if pin}


def make_build(path: Path, rehearse: bool) -> Build:
    """Load the config at `path` and derive every path of its build. Each stage's artifact is
    named by its stage pin; the ISO (and the release named after it) carries the ISO stage's
    own stamp, so a kept ISO keeps its name when the tree moves."""
    folder = build_dir(path, rehearse)
    config = config_module.load(path, cache=folder / "config.json")
    storedir = Path(config.get("storedir"))
    publish_dir = Path(config.get("publish.dir"))
    if rehearse:
        storedir, publish_dir = folder / "storedir", folder / "publish"
    pin = pins.read(Paths.pin_in(folder, "snapshot"))
    staged = stage_pins(folder, config)
    iso_pin = staged.get("iso")
    if iso_pin:
        stamp, datestamp = iso_pin["stamp"], iso_pin["datestamp"]
    else:
        stamp, datestamp = current_stamp(config, pin), pin["stamp"][:8] if pin else PENDING_STAMP
    paths = Paths(
        build_dir=folder,
        storedir=storedir,
        rel_type=config.get("rel_type"),
        subarch=config.get("subarch"),
        version_stamp=stamp,
        tarball_ext=tarball_extension(config.get("compression_mode")),
        iso_name=config_module.expand(config.get("livecd.iso"), stamp, datestamp),
        flavour=config.get("seed.flavour"),
        publish_dir=publish_dir,
        stage_stamps={stage: value["stamp"] for stage, value in staged.items()},
    )
    return Build(config, paths, rehearse, datestamp)
