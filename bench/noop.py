"""No-op `doit` with multi-GB artifacts against the same graph with tiny ones.

The checker must not read artifacts on a no-op run: right after a build, and in the runs that
follow a touch of every artifact (the first of those may hash them once). Target: ratio <= 1.1.
Usage, from the checkout: python -m bench.noop [--gib 4] [--runs 9] (paired runs: the ratio is
the median of each pair's ratio).
"""
import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from tests.support.buildgraph import Project

STAGES = 4  # tarballs that get the padding: stage1, stage2, stage3, installcd-stage1


def timed_noop(project) -> float:
    started = time.perf_counter()
    result = project.doit()
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.calls() == [], "a no-op run built something"
    return seconds


def paired(small, big, runs) -> tuple:
    """Median seconds of each and the median of the per-pair ratios, the two runs of a pair
    back to back, so that the machine's load drifts alike for both."""
    pairs = [(timed_noop(small), timed_noop(big)) for _ in range(runs)]
    return (statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs),
            statistics.median(b / a for a, b in pairs))


def touch_all(project):
    later = time.time() + 60
    for path in project.artifacts():
        os.utime(path, (later, later))


def built(where, pad_mib):
    project = Project(where)
    os.environ["CATALYST_PAD_MIB"] = str(pad_mib)
    try:
        project.build()
    finally:
        del os.environ["CATALYST_PAD_MIB"]
    return project


def first_run(project) -> float:
    started = time.perf_counter()
    project.doit(check=True)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=4)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    # As on a builder: Python keeps the project's compiled modules (__pycache__) between runs.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        small, big = built(Path(tmp) / "small", 0), built(Path(tmp) / "big", int(args.gib * 1024 / STAGES))
        sizes = [sum(p.stat().st_size for p in project.artifacts()) for project in (small, big)]
        after_build = paired(small, big, args.runs)
        touch_all(small)
        touch_all(big)
        first = first_run(small), first_run(big)
        after_touch = paired(small, big, args.runs)
    print(f"artifacts: {sizes[0] / 1024:.0f} KiB vs {sizes[1] / 2**30:.2f} GiB; {args.runs} paired runs, load "
          f"{os.getloadavg()[0]:.2f}")
    print(f"no-op right after a build: {after_build[0]:.3f} s vs {after_build[1]:.3f} s, "
          f"median ratio {after_build[2]:.2f}")
    print(f"first run after touching every artifact: {first[0]:.3f} s vs {first[1]:.3f} s")
    print(f"no-op runs after that: {after_touch[0]:.3f} s vs {after_touch[1]:.3f} s, median ratio {after_touch[2]:.2f}")


if __name__ == "__main__":
    main()
