"""Per-stage records: what a built artifact was built from and holds, and the stage pins.

After a stage is built, its record (`holdings/<stage>.json`) says which commit, which own
inputs (a signature) and when, plus what it holds. When `specs` runs, each stage's record and
the new snapshot pin give the decision, and the decision gives the stage pin
(`pins/stage-<stage>.json`): the commit and stamp the stage's spec and artifact names carry.
"""
import json
from datetime import datetime, timezone
from pathlib import Path

from gentoo_zfs_livecd import atomic
from gentoo_zfs_livecd.errors import UserError

from . import holdings as holdings_module
from .decide import StageState, decide


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_record(path, stage: str, snapshot: str, inputs: str, held: holdings_module.Holdings) -> None:
    data = dict(held.to_json(stage, snapshot), inputs=inputs, built=_now())
    atomic.write_text(path, json.dumps(data, indent=1) + "\n")


def read_record(path) -> dict | None:
    """The stored record, with `holdings` (Holdings); None when there is none (or an older format)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        raise UserError(f"{path}: not valid JSON; delete it, the next build of that stage writes it again") from None
    if data.get("format") != holdings_module.FORMAT or "inputs" not in data:
        return None
    return dict(data, holdings=holdings_module.Holdings.from_json(data))


def iso_squashfs_offset(iso) -> int:
    """Byte offset of `/image.squashfs` inside the ISO (the live root Catalyst packs)."""
    import pycdlib
    from pycdlib.pycdlibexception import PyCdlibException

    from gentoo_zfs_livecd.iso.inspection import IsoNames
    image = pycdlib.PyCdlib()
    try:
        image.open(str(iso))
    except (OSError, PyCdlibException) as error:
        raise UserError(f"{iso}: not a readable ISO 9660 image ({error}); rebuild the ISO") from None
    try:
        names = IsoNames(image)
        if not names.exists("/image.squashfs"):
            raise UserError(f"{iso}: no /image.squashfs; rebuild the ISO")
        return names.extent("/image.squashfs")[0]
    finally:
        image.close()


def hash_and_record(stage: str, targets: list, spec_file: str, record: dict) -> dict:
    """{target: SHA512} of a built stage's targets, reading what it holds in the same pass over
    its tarball (the ISO stage: its live root's var/db/pkg listing and its spec's kernel and
    unmerge packages). `record`: file, snapshot, inputs, bare_repo, tarball, iso (or None)."""
    from gentoo_zfs_livecd.catalyst import grammar
    from gentoo_zfs_livecd.release.hashing import hash_file

    from .tree import md5_cache_eclasses
    values = grammar.parse(Path(spec_file).read_text(), spec_file).values
    digests, packages, removed = {}, {}, {}
    for target in targets:
        if target == record["tarball"] and not record["iso"]:
            hexes, packages = holdings_module.hash_and_read_tarball(target, ["sha512"])
            digests[target] = hexes["sha512"]
        else:
            digests[target] = hash_file(target, ["sha512"])["sha512"]
    if record["iso"]:
        packages = holdings_module.squashfs_packages(record["iso"], iso_squashfs_offset(record["iso"]))
        removed = md5_cache_eclasses(record["bare_repo"], record["snapshot"],
                                     holdings_module.spec_removed_packages(values))
    held = holdings_module.Holdings(profile=values["profile"], packages=packages, removed=removed)
    write_record(record["file"], stage, record["snapshot"], record["inputs"], held)
    return digests


def states(paths, chain, signatures: dict) -> tuple[list, datetime | None]:
    """(StageState per stage, when the first stage was last built): a stage counts as built
    from its record's commit while every artifact its stage pin names exists."""
    found, first_built = [], None
    for index, stage in enumerate(chain):
        record = read_record(paths.holdings(stage))
        built = record is not None and all(Path(t).is_file() for t in paths.targets(stage))
        changed = None
        if built and record["inputs"] != signatures[stage]:
            changed = "its own inputs changed (spec template, settings, confdir, seed or overlay files)"
        found.append(StageState(stage, record["snapshot"] if built else None,
                                record["holdings"] if built else None, changed))
        if index == 0 and built:
            # Every stage after the first rebuilds when the first does: its build time is the
            # last full build.
            first_built = datetime.fromisoformat(record["built"])
    return found, first_built


def decide_stages(paths, chain, signatures: dict, sha: str, tree, rebuild: str, full_rebuild_days) -> list:
    stages, last_full_build = states(paths, chain, signatures)
    return decide(stages, sha, tree, rebuild=rebuild, full_rebuild_days=full_rebuild_days,
                  last_full_build=last_full_build)


def stage_pin(decision, signature: str, old_pin: dict | None, new_stamp: str, snapshot_pin: dict) -> dict:
    """A rebuilt stage gets the current stamp and commit; a kept one keeps its pin."""
    if not decision.rebuild and old_pin and old_pin.get("snapshot") == decision.snapshot:
        return old_pin
    return {"snapshot": decision.snapshot, "stamp": new_stamp, "datestamp": snapshot_pin["stamp"][:8],
            "inputs": signature}
