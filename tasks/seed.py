"""`seed`: the stage3 that stage1 starts from, verified, placed under a fixed name, pinned."""
import re
from pathlib import Path

from gentoo_zfs_livecd import pins
from gentoo_zfs_livecd.console import say
from gentoo_zfs_livecd.errors import UserError
from tasks.doit_glue import context
from tasks.doit_glue.actions import doit_action

__all__ = ["task_seed"]

SETTINGS = ("seed.file", "seed.mirrors", "arch", "seed.flavour", "seed.keyring", "seed.fingerprint", "seed.keep",
            "storedir", "rel_type", "subarch")

EXTENSION = re.compile(r"(\.tar(?:\.[A-Za-z0-9]+)?)$")


def extension(name: str) -> str:
    """`.tar.xz` of `stage3-amd64-openrc-20250101T000000Z.tar.xz`."""
    match = EXTENSION.search(name)
    if not match:
        raise UserError(f"{name}: a seed must be a stage tarball (.tar, .tar.xz, .tar.bz2, ...)")
    return match.group(1)


def place_link(build, source: Path) -> Path:
    """Point the fixed seed name at a local tarball (Catalyst follows symlinks)."""
    from gentoo_zfs_livecd.atomic import symlink
    target = build.paths.seed(extension(source.name))
    for old in target.parent.glob(Path(build.paths.seed_subpath).name + ".*"):
        if old != target:
            old.unlink()
    symlink(source, target)
    return target


def from_file(build, source: Path) -> dict:
    from gentoo_zfs_livecd import stamps
    from gentoo_zfs_livecd.inputs import mirror
    name, size, sha512 = mirror.verify_local_seed(source, build.get("seed.keyring"),
                                                  build.get("seed.fingerprint"))
    stamps.record(build.paths.stamps, source, sha512)
    place_link(build, source)
    return {"name": name, "size": size, "sha512": sha512, "source": str(source)}


def from_mirrors(build, have: dict | None, pinned: dict | None) -> dict:
    """`have`: the pin when its seed is in place (nothing to download if still the latest);
    `pinned`: the pin, whose seed no mirror may replace with an older one."""
    from gentoo_zfs_livecd import stamps
    from gentoo_zfs_livecd.inputs import mirror
    result = mirror.fetch_latest_seed(
        build.get("seed.mirrors"), build.get("arch"), build.get("seed.flavour"),
        build.get("seed.keyring"), build.get("seed.fingerprint"), build.paths.seed_work,
        have=(have["name"], have["size"], have["sha512"]) if have else None,
        pinned=pinned["name"] if pinned else None)
    pin = {"name": result.name, "size": result.size, "sha512": result.sha512}
    if result.path is None:
        say(f"   seed: {result.name} is still the latest; nothing downloaded")
        return have
    target = build.paths.seed(extension(result.name))
    mirror.place_seed(result.path, target, build.paths.old_seeds, build.get("seed.keep"))
    stamps.record(build.paths.stamps, target, result.sha512)
    return pin


def placed(build, pin: dict | None) -> bool:
    """The pinned seed is in place under its fixed name (it goes when `builds/` is cleaned)."""
    return pin is not None and build.paths.seed(extension(pin["name"])).exists()


def seed_in_place(build) -> bool:
    """doit up-to-date check: a seed that is no longer in place is placed again."""
    return placed(build, pins.read(build.paths.pin("seed")))


@doit_action
def update_seed(build) -> None:
    pinned = pins.read(build.paths.pin("seed"))
    # Not in place: a mirror's "still the latest" must not leave the fixed name empty.
    have = pinned if placed(build, pinned) else None
    if build.get("seed.file"):
        pin = from_file(build, Path(build.get("seed.file")))
    elif build.rehearsal:
        from gentoo_zfs_livecd.rehearsal import emulator
        placeholder = emulator.make_seed(build.paths.seed_work / "stage3-placeholder.tar.xz")
        say("   seed: emulator placeholder (no download in a rehearsal)")
        pin = from_file(build, placeholder)
    else:
        pin = from_mirrors(build, have, pinned)
    if pins.write(build.paths.pin("seed"), pin):
        say(f"   seed: {pin['name']} ({pin['size']} bytes)")


def is_current(build, refresh: bool) -> bool:
    """A downloaded seed stands until `refresh=1` (or the nightly) asks the mirror again."""
    return seed_in_place(build) and not refresh


def task_seed():
    """Verify and place the seed stage3 (seed.file, or the mirrors' latest, GnuPG-checked)."""
    build = context.current()
    task = {"actions": [(update_seed, [build.declared(SETTINGS)])], "targets": [build.paths.pin("seed")],
            "task_dep": ["check"], "verbosity": 2}
    if build.get("seed.file"):
        task["file_dep"] = [build.get("seed.file")]
        task["uptodate"] = [(seed_in_place, [build])]
    elif build.rehearsal:
        task["uptodate"] = [(seed_in_place, [build])]
    else:
        task["uptodate"] = [(is_current, [build, context.refresh()])]
    return task
