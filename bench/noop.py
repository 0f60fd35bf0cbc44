"""No-op `doit` with multi-GB artifacts against the same graph with tiny ones.

The checker must not read artifacts on a no-op run: right after a build, and in the runs that
follow a touch of every artifact (the first of those may hash them once). Target: ratio <= 1.1.
Usage, from the checkout: python -m bench.noop [--gib 4] [--runs 5]
"""
import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from tests.support.buildgraph import Project

STAGES = 4  # tarballs that get the padding: stage1, stage2, stage3, installcd-stage1


def timed_noop(project, runs) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = project.doit()
        times.append(time.perf_counter() - started)
        assert result.returncode == 0, result.stdout + result.stderr
        assert project.calls() == [], "a no-op run built something"
    return statistics.median(times)


def touch_all(project):
    later = time.time() + 60
    for path in project.artifacts():
        os.utime(path, (later, later))


def measure(where, pad_mib, runs):
    project = Project(where)
    os.environ["CATALYST_PAD_MIB"] = str(pad_mib)
    try:
        project.build()
    finally:
        del os.environ["CATALYST_PAD_MIB"]
    size = sum(p.stat().st_size for p in project.artifacts())
    after_build = timed_noop(project, runs)
    touch_all(project)
    started = time.perf_counter()
    project.doit(check=True)
    first_after_touch = time.perf_counter() - started
    after_touch = timed_noop(project, runs)
    return size, after_build, first_after_touch, after_touch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=4)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        small = measure(Path(tmp) / "small", 0, args.runs)
        big = measure(Path(tmp) / "big", int(args.gib * 1024 / STAGES), args.runs)
    print(f"artifacts: {small[0] / 1024:.0f} KiB vs {big[0] / 2**30:.2f} GiB")
    print(f"no-op right after a build: {small[1]:.3f} s vs {big[1]:.3f} s, ratio {big[1] / small[1]:.2f}")
    print(f"first run after touching every artifact: {small[2]:.3f} s vs {big[2]:.3f} s")
    print(f"no-op runs after that: {small[3]:.3f} s vs {big[3]:.3f} s, ratio {big[3] / small[3]:.2f}")


if __name__ == "__main__":
    main()
