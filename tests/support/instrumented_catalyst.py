"""Catalyst for the build-graph tests: records each invocation, can misbehave on request,
and otherwise hands over to the project's Catalyst emulator.

Environment: CATALYST_RECORD (file that gets one JSON line per call), CATALYST_FAULT
(`<spec stem>:<fault>`: `exit2` fails, `noartifact` exits 0 without writing, `hang` waits
until killed, `slow` takes a few seconds), CATALYST_HANGING (file where a hanging Catalyst
appends its pid, so the test can end it), CATALYST_PAD_MIB (grow each stage tarball by that
many MiB, for benchmarks with realistic artifact sizes).
"""
import json
import os
import sys
import time
from pathlib import Path

# doit starts this file by its path, from a copy of the project that has no tests/, and without
# PYTHONPATH: put the checkout holding this file first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from gentoo_zfs_livecd.catalyst import grammar  # noqa: E402
from gentoo_zfs_livecd.rehearsal import emulator


def spec_stem(argv):
    return Path(argv[argv.index("-f") + 1]).stem if "-f" in argv else None


def main():
    argv = sys.argv[1:]
    stage, _, fault = os.environ.get("CATALYST_FAULT", "").partition(":")
    faulty = spec_stem(argv) == stage
    # The pid is known before the call is recorded: tests wait for the record, then end it.
    if faulty and fault == "hang" and os.environ.get("CATALYST_HANGING"):
        with open(os.environ["CATALYST_HANGING"], "a") as pids:
            pids.write(f"{os.getpid()}\n")
    if "--help" not in argv and os.environ.get("CATALYST_RECORD"):
        with open(os.environ["CATALYST_RECORD"], "a") as record:
            record.write(json.dumps(argv) + "\n")
    if faulty:
        if fault == "exit2":
            print("ERROR   : Exception running action sequence build_packages")
            return 2
        if fault == "noartifact":
            print("WARNING : Couldn't create stage tarball")
            return 0
        if fault == "slow":
            time.sleep(3)
        if fault == "hang":
            print("NOTICE  : --- Running action sequence: unpack", flush=True)
            time.sleep(3600)
    code = emulator.main(argv)
    if code == 0 and os.environ.get("CATALYST_PAD_MIB") and "-f" in argv and "-T" not in argv:
        conf = emulator.read_conf([argv[argv.index("-c") + 1]])
        pad_tarballs(Path(argv[argv.index("-f") + 1]), Path(conf["storedir"]), int(os.environ["CATALYST_PAD_MIB"]))
    return code


def pad_tarballs(spec: Path, storedir: Path, mebibytes: int):
    """Append data to the tarball this spec produced (tar readers stop at the end marker)."""
    values = grammar.parse(spec.read_text()).values
    builds = storedir / "builds" / values["rel_type"]
    block = os.urandom(64 * 1024 * 1024)
    for tarball in builds.glob(f"{values['target']}-{values['subarch']}-{values['version_stamp']}.tar*"):
        if tarball.name.endswith(".CONTENTS.gz"):
            continue
        with open(tarball, "ab") as out:
            for _ in range(mebibytes // 64):
                out.write(block)


if __name__ == "__main__":
    sys.exit(main())
