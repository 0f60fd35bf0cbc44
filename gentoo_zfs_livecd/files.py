"""Two rules about files that several parts of the build share: which old ones to remove, and
the end of a log."""
import os


def beyond_newest(items, keep: int, newest_key, protected=()) -> list:
    """The items to remove so that the `keep` newest (by `newest_key`) remain; a protected item
    counts among them but is never returned."""
    ordered = sorted(items, key=newest_key, reverse=True)
    return [item for item in ordered[max(keep, 0):] if item not in protected]


def tail_lines(path, count: int, block_size: int = 65536, max_bytes: int = 1 << 20) -> list[str]:
    """The last `count` lines of `path`, read backwards from the end in blocks.

    A build log can be gigabytes; only the blocks holding the tail are read, and never more
    than `max_bytes`, so a log of endless progress output without newlines stays cheap.
    """
    if count <= 0:
        return []
    with open(path, "rb") as log:
        pos = end = log.seek(0, os.SEEK_END)
        blocks = []
        newlines = 0
        # count + 1 newlines guarantee `count` complete lines even when the last one is
        # unterminated and the first block starts mid-line.
        while pos > 0 and newlines <= count and end - pos < max_bytes:
            step = min(block_size, pos, max_bytes - (end - pos))
            pos -= step
            log.seek(pos)
            block = log.read(step)
            blocks.append(block)
            newlines += block.count(b"\n")
    lines = b"".join(reversed(blocks)).split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return [line.decode("utf-8", errors="replace") for line in lines[-count:]]
