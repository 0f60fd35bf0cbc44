"""Several digests of one stream in one read, each algorithm on its own thread.

hashlib releases the GIL while hashing buffers of more than 2 KiB, so on two cores the
algorithms of a chunk run side by side instead of one pass per algorithm.
"""
import hashlib
from concurrent.futures import ThreadPoolExecutor

CHUNK = 4 * 1024 * 1024


class MultiHasher:
    """Feed chunks with `update`; read `hexdigests()` at the end."""

    def __init__(self, algorithms):
        self.hashers = {name: hashlib.new(name) for name in algorithms}
        self.pool = ThreadPoolExecutor(max_workers=max(1, len(self.hashers))) if len(self.hashers) > 1 else None

    def update(self, chunk: bytes) -> None:
        if self.pool is None:
            for hasher in self.hashers.values():
                hasher.update(chunk)
            return
        view = memoryview(chunk)
        for future in [self.pool.submit(h.update, view) for h in self.hashers.values()]:
            future.result()

    def hexdigests(self) -> dict:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
        return {name: hasher.hexdigest() for name, hasher in self.hashers.items()}


def hash_file(path, algorithms, chunk_size: int = CHUNK) -> dict:
    """{algorithm: hex} for the file at `path`, read once."""
    hasher = MultiHasher(algorithms)
    with open(path, "rb", buffering=0) as stream:
        while True:
            chunk = stream.read(chunk_size)
            if not chunk:
                break
            hasher.update(chunk)
    return hasher.hexdigests()
