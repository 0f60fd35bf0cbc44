"""Catalyst 4's spec grammar, read exactly as `catalyst/config.py` SpecParser reads it, and a
linter that rejects what Catalyst would reject plus the traps that Catalyst accepts silently.

One parser serves both the linter (on every render) and the Catalyst emulator.
"""
import json
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

COMMENT = re.compile(r"\s*#.*$")
LABEL = re.compile(r"^[A-Za-z0-9_]+$")
KERNEL_KEY = re.compile(r"^boot/kernel/([^/]+)/(.+)$")
PATH_KEYS = ("portage_confdir", "livecd/fsscript", "livecd/cdtar")
DIR_LIST_KEYS = ("livecd/overlay", "livecd/root_overlay", "repos")


@dataclass
class Spec:
    """What Catalyst sees: `values` (str, list or None per key) and each key's line number."""
    source: str
    values: dict = field(default_factory=dict)
    lines: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)

    def error(self, key, text):
        line = self.lines.get(key, 0)
        self.errors.append(f"{self.source}:{line}: {key.strip() or '(empty key)'}: {text}")


@cache
def catalyst_keys() -> dict:
    """The key lists of Catalyst 4.1.1 (catalyst-keys.json beside this module)."""
    return json.loads((Path(__file__).with_name("keys.json")).read_text())


def tarball_extension(compression_mode: str) -> str:
    """The extension Catalyst gives a stage tarball written with `compression_mode`."""
    return catalyst_keys()["compression_mode_extension_pydecomp_0.3"][compression_mode]

# Catalyst 4.1 refuses a livecd/volid longer than this (catalyst/targets/livecd_stage2.py).
CATALYST_VOLID_MAX = 32
_VOLID = re.compile(r"[A-Za-z0-9_.-]{1,32}")


# What a value written into a spec or catalyst.conf may hold, by kind. Catalyst reads specs with
# str.splitlines() (which also breaks at \r, \v, \f, \x1c-\x1e, \x85, \u2028, \u2029), cuts values
# at '#', %-formats them and splits them on whitespace (catalyst/config.py, SpecParser).
TEXT = "text"          # any Unicode but control characters, line separators, '#' and '%'
PATH = "path"          # a file name: as TEXT (catalyst.conf is TOML, so any other Unicode is safe)
WORD = "word"          # as TEXT, and one token: atoms, USE flags, boot arguments, spec paths
VOLUME_ID = "volume id"
VALUE_KINDS = (TEXT, PATH, WORD, VOLUME_ID)


def value_problem(value: str, kind: str) -> str | None:
    """What is wrong with `value` as a value of `kind` (one of VALUE_KINDS), or None."""
    if kind == VOLUME_ID:
        return volume_id_problem(value)
    for char in value:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            return (f"{value!r} contains {char!r}, a control character or line break: "
                    "Catalyst would start a new spec key there; remove it")
        if char == "#":
            return f"{value!r} contains '#': Catalyst cuts the value there (comment); remove it"
        if char == "%":
            return f"{value!r} contains '%': Catalyst %-formats spec values and fails on it; remove it"
        if kind == WORD and char.isspace():
            return (f"{value!r} contains whitespace ({char!r}): Catalyst splits the value there "
                    "into separate tokens; give one token per list item")
    return None


def template_keys(template_text: str) -> set:
    """The spec keys a template writes: its literal `key:` lines and its spec_list("key", ...) calls."""
    literal = re.findall(r"^([A-Za-z0-9_/]+):", template_text, re.MULTILINE)
    listed = re.findall(r"spec_list\(\s*[\"']([A-Za-z0-9_/]+)[\"']", template_text)
    return set(literal) | set(listed)


def volume_id_problem(volid) -> str | None:
    """What is wrong with a volume id, or None. It is the ISO 9660 volume id (32 bytes) and the
    boot label that GRUB's `search -l` and dracut's root=live:CDLABEL= read as one unquoted word."""
    if isinstance(volid, str) and _VOLID.fullmatch(volid):
        return None
    return (f"{volid!r} must be 1 to {CATALYST_VOLID_MAX} of A-Z a-z 0-9 _ . - "
            "(it is the ISO volume id and the boot label, used unquoted)")



def parse(text: str, source: str = "<spec>") -> Spec:
    """Parse spec text the way Catalyst does, recording parse errors Catalyst would die on."""
    spec = Spec(source)
    tokens: dict = {}
    current = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = COMMENT.sub("", raw.strip())
        if not line:
            continue
        if ":" in line:
            key, value = line.split(":", 1)
            value = value.strip().strip('"')
            spec.lines[key] = number
            try:
                value = value % {k: " ".join(v) for k, v in tokens.items()}
            except (ValueError, KeyError, TypeError) as err:
                spec.error(key, f"Catalyst %-formats values and fails here ({err!r}); write '%%' for '%'")
            current = key
            tokens[key] = value.split()
        elif current is None:
            # Catalyst turns a stray line before any key into a key of its own.
            key = line.split()[0]
            spec.lines[key] = number
            tokens[key] = line.split()[1:]
            current = key
        else:
            tokens[current].extend(line.split())
    for key, words in tokens.items():
        if not words:
            continue
        value = words[0] if len(words) == 1 else words
        spec.values[key] = None if value == "none" or (isinstance(value, str) and value.lower() == "none") else value
    return spec


def lint(text: str, source: str, check_paths: bool = True) -> list:
    """Every reason Catalyst 4 would reject this spec or build something broken from it."""
    spec = parse(text, source)
    _raw_traps(spec, text)
    target = spec.values.get("target")
    if target is None:
        spec.error("target", 'Required value "target" not specified.')
        return spec.errors
    keys = catalyst_keys()["targets"].get(target)
    if keys is None:
        spec.error("target", f"unknown target {target!r}")
        return spec.errors
    _check_keys(spec, keys)
    _check_values(spec, target)
    if check_paths:
        _check_paths(spec)
    return spec.errors


def _raw_traps(spec, text):
    """Traps visible only in the raw text: Catalyst parses these without complaint."""
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key = stripped.split(":", 1)[0] if ":" in stripped else None
        where = f"{spec.source}:{number}"
        if "#" in stripped:
            spec.errors.append(f"{where}: {key or 'value'}: '#' inside a value: Catalyst drops "
                               "everything after it")
        if key is not None and raw[:1].isspace():
            spec.errors.append(f"{where}: {key.strip()}: continuation line contains ':', so Catalyst "
                               "reads it as a new key; put such tokens on the key line")
        elif key is not None and key != key.rstrip():
            spec.errors.append(f"{where}: {key.strip()}: space before ':' makes the key "
                               f"{key!r}, which Catalyst does not recognise")


def _check_keys(spec, keys):
    valid = set(keys["valid"]) | set(keys["required"])
    labels = spec.values.get("boot/kernel") or []
    labels = [labels] if isinstance(labels, str) else labels
    for label in labels:
        if not LABEL.match(label):
            spec.error("boot/kernel", f"kernel label {label!r} must use only [A-Za-z0-9_]: Catalyst "
                                      "renames it halfway through and loses its settings")
    suffixes = catalyst_keys()["prefix_keys"]["boot/kernel/<label>/<suffix>"]["suffixes"]
    for key in spec.lines:
        kernel = KERNEL_KEY.match(key)
        if kernel and "boot/kernel" in valid and kernel.group(1) in labels and kernel.group(2) in suffixes:
            continue
        if key not in valid and key.strip() in valid:
            continue  # reported as a raw trap (space before the colon)
        if key not in valid:
            spec.error(key, f'Argument "{key}" not recognized for target {spec.values["target"]}.')
    for key in keys["required"]:
        if key not in spec.values:
            spec.error(key, f'Required argument "{key}" not specified.')


def _check_values(spec, target):
    constraints = catalyst_keys()["value_constraints"]
    for key in constraints["single_token_required"]:
        if isinstance(spec.values.get(key), list):
            spec.error(key, "must be a single token (Catalyst expects a string here)")
    for key, value in spec.values.items():
        if KERNEL_KEY.match(key) and key.endswith("/distkernel") and value != "yes":
            spec.error(key, f"{value!r}: Catalyst only tests that the key exists; write 'yes' or omit it")
    mode = spec.values.get("compression_mode")
    known = [m.split(" ")[0] for m in catalyst_keys()["compression_mode_extension_pydecomp_0.3"]
             if not m.startswith("_")]
    if mode is not None and mode not in known:
        spec.error("compression_mode", f"unknown mode {mode!r}: Catalyst writes no tarball and still "
                                       f"exits 0; use one of {', '.join(known)}")
    subarch = spec.values.get("subarch")
    subarches = {s for group in constraints["subarch_4.1.1"].values() for s in group}
    if isinstance(subarch, str) and subarch not in subarches:
        spec.error("subarch", f"Unknown host machine type {subarch}")
    if target == "livecd-stage2":
        _check_livecd_stage2(spec, constraints)


def _check_livecd_stage2(spec, constraints):
    if "livecd/iso" not in spec.values:
        spec.error("livecd/iso", "missing: Catalyst then builds no ISO and still exits 0")
    volid = spec.values.get("livecd/volid")
    if volid is None:
        spec.error("livecd/volid", "missing: the default 'catalyst <treeish>' has a space and breaks booting")
    elif volume_id_problem(volid):
        spec.error("livecd/volid", volume_id_problem(volid))
    kind = spec.values.get("livecd/type")
    allowed = ("generic-livecd", "gentoo-release-minimal")
    if kind is not None and kind not in allowed:
        spec.error("livecd/type", f"{kind!r}: use {' or '.join(allowed)} (the others expect files "
                                  "Catalyst 4 no longer provides)")


def _check_paths(spec):
    for key in PATH_KEYS:
        if key in spec.values:
            _check_path(spec, key, spec.values[key], want_dir=key == "portage_confdir")
    for key, value in spec.values.items():
        if KERNEL_KEY.match(key) and key.endswith("/config"):
            _check_path(spec, key, value, want_dir=False)
    for key in DIR_LIST_KEYS:
        value = spec.values.get(key)
        for item in [value] if isinstance(value, str) else value or []:
            _check_path(spec, key, item, want_dir=key != "repos" or not item.endswith(".sqfs"))


def _check_path(spec, key, value, want_dir):
    if not isinstance(value, str):
        return
    path = Path(value)
    if not path.is_absolute():
        spec.error(key, f"{value!r} is relative; Catalyst resolves it against its own working "
                        "directory: use an absolute path")
    elif want_dir and not path.is_dir():
        spec.error(key, f"{value} is not a directory")
    elif not want_dir and not path.is_file():
        spec.error(key, f"{value} does not exist")
