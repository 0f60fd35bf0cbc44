"""`doit list` start-up against `python -c "import doit"`. Target: ratio <= 1.5.
Usage, from the checkout: python -m bench.list [--runs 10]
"""
import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def median_time(argv, runs) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    baseline = median_time([sys.executable, "-c", "import doit"], args.runs)
    listing = median_time([sys.executable, "-m", "doit", "list"], args.runs)
    print(f"import doit: {baseline * 1000:.0f} ms; doit list: {listing * 1000:.0f} ms; "
          f"ratio {listing / baseline:.2f}")


if __name__ == "__main__":
    main()
