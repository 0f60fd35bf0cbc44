"""Catalyst for the build-graph tests: records each invocation, can misbehave on request,
and otherwise hands over to the project's Catalyst emulator.

Environment: CATALYST_RECORD (file that gets one JSON line per call), CATALYST_FAULT
(`<spec stem>:<fault>`: `exit2` fails, `noartifact` exits 0 without writing, `hang` waits
until killed, `slow` takes a few seconds).
"""
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tasks import emulator  # noqa: E402


def spec_stem(argv):
    return Path(argv[argv.index("-f") + 1]).stem if "-f" in argv else None


def main():
    argv = sys.argv[1:]
    if "--help" not in argv and os.environ.get("CATALYST_RECORD"):
        with open(os.environ["CATALYST_RECORD"], "a") as record:
            record.write(json.dumps(argv) + "\n")
    stage, _, fault = os.environ.get("CATALYST_FAULT", "").partition(":")
    if spec_stem(argv) == stage:
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
    return emulator.main(argv)


if __name__ == "__main__":
    sys.exit(main())
