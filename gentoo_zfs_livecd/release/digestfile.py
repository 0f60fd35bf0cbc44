"""Gentoo's DIGESTS format: `# <ALGO> HASH` headers, then `<hex>  <name>` lines.

Catalyst 4 writes `# BLAKE2B HASH` / `# SHA512 HASH`; Catalyst 3 wrote `# BLAKE2 (b2sum) HASH`
with absolute paths. Both are read; names are reduced to their basename.
"""
import re

HEADER = re.compile(r"^#\s+(\S+)(?:\s+\([^)]*\))?\s+HASH\s*$", re.IGNORECASE)
LINUX_LINE = re.compile(r"^([0-9a-fA-F]+)\s+\*?(\S.*)$")
BSD_LINE = re.compile(r"^(\S+)\s+\((.+)\)\s+=\s+([0-9a-fA-F]+)$")

# Header names as Gentoo writes them, mapped to hashlib names.
ALGORITHMS = {
    "BLAKE2B": "blake2b",
    "BLAKE2": "blake2b",
    "SHA512": "sha512",
    "SHA256": "sha256",
    "SHA1": "sha1",
    "MD5": "md5",
}


def hashlib_name(header_name: str) -> str:
    """hashlib's name for a DIGESTS header name (`BLAKE2B` -> `blake2b`)."""
    return ALGORITHMS.get(header_name.upper(), header_name.lower())


def header_name(algorithm: str) -> str:
    """The header name Catalyst 4 writes for a hashlib name (`blake2b` -> `BLAKE2B`)."""
    return algorithm.upper()


def parse(text: str) -> dict:
    """Map basename -> {hashlib name: lower-case hex} from DIGESTS text.

    Lines that are neither headers nor digest lines (PGP armour, blanks) are ignored.
    """
    result: dict = {}
    algorithm = None
    for raw in text.splitlines():
        line = raw.strip()
        header = HEADER.match(line)
        if header:
            algorithm = hashlib_name(header.group(1))
            continue
        bsd = BSD_LINE.match(line)
        if bsd:
            name = bsd.group(2).rsplit("/", 1)[-1]
            result.setdefault(name, {})[hashlib_name(bsd.group(1))] = bsd.group(3).lower()
            continue
        linux = LINUX_LINE.match(line)
        if linux and algorithm:
            name = linux.group(2).strip().rsplit("/", 1)[-1]
            result.setdefault(name, {})[algorithm] = linux.group(1).lower()
    return result


def format(entries) -> str:
    """DIGESTS text for `entries`: an iterable of (basename, {hashlib name: hex}), in that order.

    One block per algorithm and file, as Catalyst 4 writes them (`linux` format).
    """
    lines = []
    for name, digests in entries:
        for algorithm, hexdigest in digests.items():
            lines.append(f"# {header_name(algorithm)} HASH")
            lines.append(f"{hexdigest}  {name}")
    return "\n".join(lines) + "\n"
