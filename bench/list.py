"""`doit list` start-up against `python -c "import doit"`. Target: ratio <= 1.5.
Usage, from the checkout: python -m bench.list [--runs 15] (paired runs)
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def seconds(argv) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    # As on a builder: Python keeps the project's compiled modules (__pycache__) between runs.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    # Paired: each `doit list` right after its baseline, so load changes hit both alike.
    pairs = [(seconds([sys.executable, "-c", "import doit"]), seconds([sys.executable, "-m", "doit", "list"]))
             for _ in range(args.runs)]
    baseline = statistics.median(a for a, _ in pairs)
    listing = statistics.median(b for _, b in pairs)
    ratio = statistics.median(b / a for a, b in pairs)
    print(f"import doit: {baseline * 1000:.0f} ms; doit list: {listing * 1000:.0f} ms; "
          f"median ratio of {args.runs} pairs {ratio:.2f}")


if __name__ == "__main__":
    main()
