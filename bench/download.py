"""Download + SHA512 + BLAKE2B of one large file from a loopback HTTP server: ours (hashing
while downloading) against `curl -o` followed by `sha512sum` and `b2sum`.

Both read the same file from the same server (Python's http.server with sendfile, in a
subprocess), so the ratio compares the client side only. Target: ratio <= 0.7.

    python -m bench.download [--size 1G] [--rounds 3]     # from the checkout
"""
import argparse
import os
import resource
import socket
import subprocess
import sys
import statistics
import tempfile
import time
from pathlib import Path

from gentoo_zfs_livecd.inputs import mirror
from tests.support.network import free_port

BLOCK = 16 * 1024 * 1024


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def make_file(path: Path, size: int) -> None:
    """`size` bytes of incompressible data (a random block repeated: hashing cost does not
    depend on the content)."""
    block = os.urandom(BLOCK)
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            out.write(block[:min(remaining, BLOCK)])
            remaining -= min(remaining, BLOCK)


# http.server with sendfile(2): the server's own CPU, which competes with the client on this
# machine but not on a real mirror, stays near zero for both contenders.
SERVER = """
import functools, http.server, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    def copyfile(self, source, outputfile):
        outputfile.flush()
        self.connection.sendfile(source)
    def log_message(self, *args):
        pass
handler = functools.partial(Handler, directory=sys.argv[1])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), handler).serve_forever()
"""


def start_server(directory: Path):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(directory), str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit("http.server did not start")


def ours(url: str, out: Path, size: int) -> dict:
    with open(os.devnull, "w") as quiet:
        return mirror.download(mirror.make_session(), url, out, size, quiet)


def baseline(url: str, out: Path) -> dict:
    subprocess.run(["curl", "-sS", "--fail", "-o", str(out), url], check=True)
    sha512 = subprocess.run(["sha512sum", str(out)], check=True, capture_output=True, text=True).stdout.split()[0]
    blake2b = subprocess.run(["b2sum", str(out)], check=True, capture_output=True, text=True).stdout.split()[0]
    return {"sha512": sha512, "blake2b": blake2b}


def cpu_seconds() -> float:
    """CPU time of this process (all threads) plus its reaped children (curl, sha512sum, b2sum)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(function, *args):
    """(wall seconds, CPU seconds, result) of one call."""
    start, cpu = time.perf_counter(), cpu_seconds()
    result = function(*args)
    return time.perf_counter() - start, cpu_seconds() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1G", help="file size, e.g. 1G, 256M (default 1G)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="pairs of runs (ours, then the baseline); the ratio is the median of the pairs'")
    args = parser.parse_args()
    size = parse_size(args.size)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-download-", dir="/var/tmp") as tmp:
        tmp = Path(tmp)
        served = tmp / "served"
        served.mkdir()
        make_file(served / "seed.tar.xz", size)
        server, base = start_server(served)
        url = f"{base}/seed.tar.xz"
        try:
            times = {"ours": [], "curl+sha512sum+b2sum": []}
            cpu = {name: [] for name in times}
            for _ in range(args.rounds):
                out = tmp / "ours.part"
                elapsed, used, ours_digests = timed(ours, url, out, size)
                out.unlink()
                times["ours"].append(elapsed)
                cpu["ours"].append(used)
                out = tmp / "curl.out"
                elapsed, used, curl_digests = timed(baseline, url, out)
                out.unlink()
                times["curl+sha512sum+b2sum"].append(elapsed)
                cpu["curl+sha512sum+b2sum"].append(used)
                if ours_digests != curl_digests:
                    raise SystemExit(f"digests differ: {ours_digests} != {curl_digests}")
        finally:
            server.terminate()
            server.wait()
    best = {name: statistics.median(values) for name, values in times.items()}
    print(f"file size: {size} bytes ({size / (1 << 20):.0f} MiB), {args.rounds} paired rounds, medians;"
          f" {len(os.sched_getaffinity(0))} CPUs, load average {load:.2f} before (hashing in"
          " parallel needs a second idle CPU)")
    for name, seconds in best.items():
        print(f"{name:>22}: {seconds:.2f} s ({size / seconds / (1 << 20):.0f} MiB/s), CPU {statistics.median(cpu[name]):.2f} s"
              f"  all: {', '.join(f'{t:.2f}' for t in times[name])}")
    ratio = statistics.median(a / b for a, b in zip(times["ours"], times["curl+sha512sum+b2sum"]))
    print(f"ratio ours / baseline, median of the pairs: {ratio:.2f} (target <= 0.70)")


if __name__ == "__main__":
    main()
