"""Time the release digests (MD5, SHA1, SHA256, SHA512, BLAKE2B in one read) against
`openssl dgst` and coreutils run once per algorithm, one after another, in the same run.

    python -m bench.digests            # from the checkout; 1 GiB
    python -m bench.digests --size 256M

Targets on two cores: ours / openssl <= 0.55, ours / coreutils <= 0.4. The test file is
made once in a temporary directory and read once before timing, so every contender reads
from the page cache.
"""
import argparse
import os
import subprocess
import sys
import statistics
import tempfile
import time
from pathlib import Path

from gentoo_zfs_livecd.release.hashing import hash_file

ALGORITHMS = ["md5", "sha1", "sha256", "sha512", "blake2b"]
OPENSSL = {"md5": "-md5", "sha1": "-sha1", "sha256": "-sha256", "sha512": "-sha512",
           "blake2b": "-blake2b512"}
COREUTILS = {"md5": "md5sum", "sha1": "sha1sum", "sha256": "sha256sum", "sha512": "sha512sum",
             "blake2b": "b2sum"}
TARGETS = {"openssl": 0.55, "coreutils": 0.4}


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text[-1:].upper() in units:
        return int(float(text[:-1]) * units[text[-1:].upper()])
    return int(text)


def make_file(path: Path, size: int) -> None:
    block = 8 << 20
    with open(path, "wb") as out:
        for offset in range(0, size, block):
            out.write(os.urandom(min(block, size - offset)))


def warm(path: Path) -> None:
    with open(path, "rb", buffering=0) as stream:
        while stream.read(8 << 20):
            pass


def timed(func):
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def run_tools(argvs):
    outputs = []
    for argv in argvs:
        outputs.append(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
    return outputs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G", help="test file size, e.g. 1G, 256M (default 1G)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of all three contenders back to back; the ratios are medians over rounds")
    args = parser.parse_args(argv)
    size = parse_size(args.size)

    with tempfile.TemporaryDirectory(prefix="bench-digests-") as tmp:
        path = Path(tmp) / "image.iso"
        make_file(path, size)
        warm(path)
        openssl = [["openssl", "dgst", OPENSSL[a], str(path)] for a in ALGORITHMS]
        coreutils = [[COREUTILS[a], str(path)] for a in ALGORITHMS]
        rounds = []
        for _ in range(args.rounds):
            seconds, ours = timed(lambda: hash_file(path, ALGORITHMS))
            openssl_seconds, _ = timed(lambda: run_tools(openssl))
            coreutils_seconds, coreutils_out = timed(lambda: run_tools(coreutils))
            rounds.append({"ours": seconds, "openssl": openssl_seconds, "coreutils": coreutils_seconds})
        for algorithm, out in zip(ALGORITHMS, coreutils_out):
            if out.split()[0] != ours[algorithm]:
                print(f"MISMATCH: {algorithm} differs from {COREUTILS[algorithm]}", file=sys.stderr)
                return 1

    mib = size / (1 << 20)
    print(f"file: {mib:.0f} MiB, CPUs: {os.cpu_count()}, load {os.getloadavg()[0]:.2f}, "
          f"{args.rounds} rounds, algorithms: {', '.join(ALGORITHMS)}")
    for name in rounds[0]:
        seconds = statistics.median(r[name] for r in rounds)
        print(f"{name:10s} {seconds:7.3f} s  {mib / seconds:8.1f} MiB/s  (median)")
    failed = False
    for baseline, target in TARGETS.items():
        ratio = statistics.median(r["ours"] / r[baseline] for r in rounds)
        verdict = "ok" if ratio <= target else "ABOVE TARGET"
        failed |= ratio > target
        print(f"ours/{baseline:9s} {ratio:5.2f}  (target <= {target}, median of rounds) {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
