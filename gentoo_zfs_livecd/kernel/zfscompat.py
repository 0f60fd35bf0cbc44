"""Does the kernel a build will get fit the ZFS release it will get?

Gentoo's zfs-kmod dies in pkg_setup when the kernel is newer than the release's
Linux-Maximum, hours into a catalyst run. This module answers the question before the run,
from the pinned commit of the bare gentoo.git that catalyst's snapshot squashfs is made of
(or from that squashfs), and produces the package.mask lines that make portage pick exactly
the kernel that was checked.
"""
import functools
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gentoo_zfs_livecd.checkout import ZFS_KERNEL_RANGES
from gentoo_zfs_livecd.errors import UserError

DIST_KERNEL_PACKAGES = ("sys-kernel/gentoo-kernel", "sys-kernel/gentoo-kernel-bin",
                        "sys-kernel/vanilla-kernel")
DIST_KERNEL_VIRTUAL = "virtual/dist-kernel"

_VERSION = re.compile(
    r"^(?P<numbers>\d+(?:\.\d+)*)(?P<letter>[a-z]?)"
    r"(?P<suffixes>(?:_(?:alpha|beta|pre|rc|p)\d*)*)(?:-r(?P<revision>\d+))?$"
)
_SUFFIX = re.compile(r"_(alpha|beta|pre|rc|p)(\d*)")
_SUFFIX_ORDER = {"alpha": 0, "beta": 1, "pre": 2, "rc": 3, "p": 5}
_NO_SUFFIX = 4
_KEYWORDS = re.compile(r"^\s*KEYWORDS=([\"'])(.*?)\1", re.MULTILINE | re.DOTALL)
# The bounds the ebuild that builds zfs.ko enforces (linux-mod-r1.eclass MODULES_KERNEL_MAX/_MIN;
# zfs-kmod's pkg_setup dies above ZFS_KERNEL_COMPAT=${MODULES_KERNEL_MAX} and its RDEPEND caps
# virtual/dist-kernel; older ebuilds set ZFS_KERNEL_COMPAT="x.y" alone).
_KERNEL_BOUND = re.compile(r"""^\s*(MODULES_KERNEL_MAX|MODULES_KERNEL_MIN|ZFS_KERNEL_COMPAT)=["']?(\d+(?:\.\d+)*)["']?\s*$""",
                           re.MULTILINE)
# ZFS 2.3.x: sys-fs/zfs-kmod builds the module; from 2.4 sys-fs/zfs does.
ZFS_MODULE_PACKAGES = ("sys-fs/zfs", "sys-fs/zfs-kmod")
_ATOM = re.compile(r"^(?P<operator>[<>]=?|=|~)?(?P<rest>[A-Za-z0-9+_.*-]+/[A-Za-z0-9+_.*-]+)$")


# --- Gentoo version comparison (PMS 3.3) --------------------------------------------------

def _parse_version(version: str):
    match = _VERSION.match(version)
    if not match:
        raise ValueError(f"not a Gentoo version: {version!r}")
    return match


def is_version(text: str) -> bool:
    return bool(_VERSION.match(text))


def _compare_numbers(a: list, b: list) -> int:
    first = (int(a[0]) > int(b[0])) - (int(a[0]) < int(b[0]))
    if first:
        return first
    for left, right in zip(a[1:], b[1:]):
        if left.startswith("0") or right.startswith("0"):
            left, right = left.rstrip("0"), right.rstrip("0")
        else:
            left, right = int(left), int(right)
        if left != right:
            return -1 if left < right else 1
    return (len(a) > len(b)) - (len(a) < len(b))


def _suffix_list(text: str) -> list:
    return [(_SUFFIX_ORDER[name], int(number or 0)) for name, number in _SUFFIX.findall(text)]


def _compare_suffixes(a: list, b: list) -> int:
    length = max(len(a), len(b))
    for index in range(length):
        left = a[index] if index < len(a) else (_NO_SUFFIX, 0)
        right = b[index] if index < len(b) else (_NO_SUFFIX, 0)
        if left != right:
            return -1 if left < right else 1
    return 0


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as Gentoo orders versions: 2.4.0_rc2 < 2.4.0 < 2.4.0_p1 < 2.4.0-r1."""
    left, right = _parse_version(a), _parse_version(b)
    for result in (
        _compare_numbers(left["numbers"].split("."), right["numbers"].split(".")),
        (left["letter"] > right["letter"]) - (left["letter"] < right["letter"]),
        _compare_suffixes(_suffix_list(left["suffixes"]), _suffix_list(right["suffixes"])),
        int(left["revision"] or 0) - int(right["revision"] or 0),
    ):
        if result:
            return 1 if result > 0 else -1
    return 0


version_key = functools.cmp_to_key(compare_versions)


def without_revision(version: str) -> str:
    return re.sub(r"-r\d+$", "", version)


def major_minor(version: str) -> tuple:
    numbers = _parse_version(version)["numbers"].split(".")
    return int(numbers[0]), int(numbers[1]) if len(numbers) > 1 else 0


def _is_live(version: str) -> bool:
    return "9999" in _parse_version(version)["numbers"].split(".")


# --- atoms and pins ------------------------------------------------------------------------

@dataclass(frozen=True)
class Atom:
    operator: str | None  # None for an unversioned atom
    package: str          # category/name
    version: str | None
    glob: bool = False    # =cat/pkg-1.2* matches 1.2, 1.2.3, 1.20 (a string prefix)

    def matches(self, version: str) -> bool:
        if self.operator is None:
            return True
        if self.glob:
            return version.startswith(self.version)
        if self.operator == "~":
            return without_revision(version) == without_revision(self.version)
        order = compare_versions(version, self.version)
        return {"=": order == 0, ">": order > 0, ">=": order >= 0, "<": order < 0,
                "<=": order <= 0}[self.operator]


def parse_atom(text: str, key: str = "kernel.sources") -> Atom:
    """`sys-kernel/gentoo-sources`, `=sys-kernel/gentoo-sources-6.6.30`, `>=cat/pkg-1.2`, ..."""
    match = _ATOM.match(text.strip())
    if not match:
        raise UserError(f"{key}: {text!r} is not a package atom; write category/name or "
                        f"=category/name-version (slots and USE deps are not supported)")
    operator, rest = match["operator"], match["rest"]
    if operator is None:
        if "*" in rest:
            raise UserError(f"{key}: {text!r}: a '*' needs the '=' operator")
        return Atom(None, rest, None)
    glob = rest.endswith("*") and operator == "="
    body = rest[:-1] if glob else rest
    for position in [i for i, character in enumerate(body) if character == "-"]:
        version = body[position + 1:]
        if is_version(version) or (glob and re.match(r"^\d+(\.\d+)*\.?$", version)):
            return Atom(operator, body[:position], version, glob)
    raise UserError(f"{key}: {text!r} has the operator {operator!r} but no valid version; "
                    f"write e.g. ={body}-1.2.3 or drop the operator")


def matches_pin(version: str, pin: str) -> bool:
    """A pin `6.12` takes every 6.12.x (and revisions); `6.12.41` takes 6.12.41 and its
    revisions; a pin with a revision takes exactly that ebuild."""
    if "-r" in pin:
        return compare_versions(version, pin) == 0
    pin_numbers = _parse_version(pin)["numbers"].split(".")
    parsed = _parse_version(version)
    numbers = parsed["numbers"].split(".")
    if [int(n) for n in numbers[:len(pin_numbers)]] != [int(n) for n in pin_numbers]:
        return False
    pinned = _parse_version(pin)
    return len(numbers) > len(pin_numbers) or (
        parsed["letter"] == pinned["letter"] and parsed["suffixes"] == pinned["suffixes"])


def _check_pin(pin: str, key: str = "kernel.version") -> None:
    if not is_version(pin):
        raise UserError(f"{key}: {pin!r} is not a kernel version; write e.g. 6.12 or 6.12.41")


# --- reading the portage tree ----------------------------------------------------------------

class SquashfsTree:
    """The tree in a Catalyst snapshot squashfs, as Catalyst mounts it (the emulator reads this)."""

    def __init__(self, sqfs):
        self.sqfs = Path(sqfs)
        if not self.sqfs.is_file():
            raise UserError(f"{self.sqfs}: portage snapshot not found; run the snapshot step first")

    def __str__(self) -> str:
        return str(self.sqfs)

    def _unsquashfs(self, options: list, paths: list) -> subprocess.CompletedProcess:
        if shutil.which("unsquashfs") is None:
            raise UserError("unsquashfs not found; install squashfs-tools (4.5 or newer)")
        return subprocess.run(["unsquashfs", *options, str(self.sqfs), *paths], capture_output=True)

    def file_names(self, directory: str) -> list:
        result = self._unsquashfs(["-lc", "-d", ""], [directory])
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip().splitlines() or ["no output"]
            raise UserError(f"{self.sqfs}: unsquashfs cannot list it: {message[-1]}; fetch the "
                            f"snapshot again")
        prefix = f"/{directory}/"
        return [line[len(prefix):] for line in result.stdout.decode(errors="replace").splitlines()
                if line.startswith(prefix) and "/" not in line[len(prefix):]]

    def read(self, path: str) -> str:
        result = self._unsquashfs(["-cat"], [path])
        if result.returncode != 0:
            raise UserError(f"{self.sqfs}: cannot read {path}: "
                            f"{result.stderr.decode(errors='replace').strip()}")
        return result.stdout.decode(errors="replace")


class CommitTree:
    """The tree at a commit of the bare gentoo.git: the facts Catalyst's snapshot of that commit
    would hold, read before (or without) making it."""

    def __init__(self, bare_repo, sha: str):
        self.bare_repo, self.sha = bare_repo, sha

    def __str__(self) -> str:
        return f"commit {self.sha[:12]} of {self.bare_repo}"

    def file_names(self, directory: str) -> list:
        from gentoo_zfs_livecd.rebuild.tree import list_paths
        return [path.rsplit("/", 1)[-1] for path in list_paths(self.bare_repo, self.sha, directory)]

    def read(self, path: str) -> str:
        from gentoo_zfs_livecd.rebuild.tree import read_blob
        text = read_blob(self.bare_repo, self.sha, path)
        if text is None:
            raise UserError(f"{self}: no {path}; pin another commit or fetch this one again")
        return text


def list_ebuild_versions(tree, package: str) -> list:
    """Versions of `category/name` in the tree, oldest first (any keywords)."""
    prefix = f"{package.split('/')[1]}-"
    versions = []
    for name in tree.file_names(package):
        if name.startswith(prefix) and name.endswith(".ebuild"):
            version = name[len(prefix):-len(".ebuild")]
            if is_version(version):
                versions.append(version)
    return sorted(versions, key=version_key)


def read_ebuild(tree, package: str, version: str) -> str:
    return tree.read(f"{package}/{package.split('/')[1]}-{version}.ebuild")


def ebuild_keywords(text: str) -> list:
    match = _KEYWORDS.search(text)
    return match.group(2).split() if match else []


def stable_versions(tree, package: str, arch: str) -> list:
    """Non-live versions whose KEYWORDS contain `arch` itself (not only `~arch`), oldest first."""
    return [version for version in list_ebuild_versions(tree, package)
            if not _is_live(version)
            and arch in ebuild_keywords(read_ebuild(tree, package, version))]


def select_version(versions: list, atom: Atom | None = None, pin: str | None = None):
    """The newest of `versions` that the atom and the pin allow, or None."""
    allowed = [version for version in versions
               if (atom is None or atom.matches(version))
               and (pin is None or matches_pin(version, pin))]
    return max(allowed, key=version_key) if allowed else None


# --- the ZFS/Linux ranges --------------------------------------------------------------------

@dataclass(frozen=True)
class ZfsRanges:
    path: str
    releases: dict  # "2.3.4" -> ("4.18", "6.16")


def load_ranges(path=ZFS_KERNEL_RANGES) -> ZfsRanges:
    """Read kernel-configs/zfs-kernel-ranges.json: {"releases": {"2.3.4": {"linux_min":
    "4.18", "linux_max": "6.16"}, ...}}."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: ZFS/Linux range table not found; restore it from the "
                        f"project's kernel-configs/")
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}); fix it")
    releases = document.get("releases") if isinstance(document, dict) else None
    if not isinstance(releases, dict):
        raise UserError(f"{path}: no \"releases\" mapping; expected {{\"releases\": "
                        f"{{\"2.3.4\": {{\"linux_min\": \"4.18\", \"linux_max\": \"6.16\"}}}}}}")
    table = {}
    for release, entry in releases.items():
        try:
            bounds = entry["linux_min"], entry["linux_max"]
            for bound in bounds:
                major_minor(bound)
        except (TypeError, KeyError, ValueError):
            raise UserError(f"{path}: releases.{release} needs linux_min and linux_max as "
                            f"versions like \"4.18\"; fix that entry")
        table[release] = bounds
    return ZfsRanges(str(path), table)


def zfs_kernel_range(zfs_version: str, ranges: ZfsRanges) -> tuple:
    """(linux_min, linux_max) of a ZFS release; a Gentoo revision (-r1) is ignored."""
    bounds = ranges.releases.get(zfs_version) or ranges.releases.get(without_revision(zfs_version))
    if bounds is None:
        release = without_revision(zfs_version)
        raise UserError(
            f"ZFS {zfs_version} is not listed in {ranges.path}; add \"{release}\" with "
            f"linux_min/linux_max from Linux-Minimum/Linux-Maximum in the META file of the "
            f"zfs-{release.replace('_', '-')} tag"
        )
    return bounds


def ebuild_kernel_bounds(text: str) -> tuple:
    """(min, max) kernel of an ebuild's MODULES_KERNEL_MIN/MAX (or ZFS_KERNEL_COMPAT); None where unset."""
    found = {}
    for name, value in _KERNEL_BOUND.findall(text):
        found.setdefault(name, value)
    return found.get("MODULES_KERNEL_MIN"), found.get("MODULES_KERNEL_MAX") or found.get("ZFS_KERNEL_COMPAT")


def snapshot_kernel_range(tree, zfs_package: str, zfs_version: str) -> tuple | None:
    """(linux_min, linux_max, ebuild) from the tree's ebuild of `zfs_version` that builds
    zfs.ko, or None when no such ebuild states a maximum."""
    for package in dict.fromkeys((zfs_package, *ZFS_MODULE_PACKAGES)):
        if zfs_version not in list_ebuild_versions(tree, package):
            continue
        low, high = ebuild_kernel_bounds(read_ebuild(tree, package, zfs_version))
        if high:
            return low or "0", high, f"{package}-{zfs_version}.ebuild"
    return None


def fits(kernel_version: str, bounds: tuple) -> bool:
    return major_minor(bounds[0]) <= major_minor(kernel_version) <= major_minor(bounds[1])


def check_compat(zfs_version: str, kernel_version: str, ranges: ZfsRanges,
                 available_kernels=(), kernel_package="sys-kernel/gentoo-kernel") -> None:
    """UserError unless the kernel's major.minor is within the ZFS release's range in the table."""
    check_fit(zfs_version, kernel_version, zfs_kernel_range(zfs_version, ranges), available_kernels,
              kernel_package)


def check_fit(zfs_version: str, kernel_version: str, bounds: tuple, available_kernels=(),
              kernel_package="sys-kernel/gentoo-kernel") -> None:
    """UserError unless the kernel's major.minor is within `bounds`; the message names the
    newest of `available_kernels` that would fit."""
    if fits(kernel_version, bounds):
        return
    name = kernel_package.split("/")[-1]
    fitting = [version for version in available_kernels if fits(version, bounds)]
    if fitting:
        best = max(fitting, key=version_key)
        hint = f"newest {name} that fits: {best}"
        advice = f"pin kernel.version to {best} or use a snapshot with a newer ZFS"
    else:
        hint = f"no {name} in the snapshot fits"
        advice = "use a snapshot whose ZFS supports an available kernel"
    raise UserError(
        f"ZFS {zfs_version} supports Linux {bounds[0]} to {bounds[1]}; this build selects "
        f"{kernel_version} ({hint}); {advice}"
    )


# --- pinning masks ---------------------------------------------------------------------------

def kernel_mask_lines(kernel_package: str, kernel_version: str, virtual_versions=()) -> list:
    """package.mask lines that leave `kernel_version` as the newest visible kernel.

    For a dist kernel the virtual is masked too: zfs-kmod (USE=dist-kernel) and other
    packages depend on virtual/dist-kernel, and a newer virtual would pull in a newer
    gentoo-kernel-bin or fail to resolve. The virtual is masked above the newest revision
    that has the same version as the kernel, since virtual and kernel revisions differ.
    """
    lines = [f">{kernel_package}-{kernel_version}"]
    if kernel_package in DIST_KERNEL_PACKAGES:
        base = without_revision(kernel_version)
        same = [version for version in virtual_versions if without_revision(version) == base]
        lines.append(f">{DIST_KERNEL_VIRTUAL}-{max(same, key=version_key) if same else base}")
    return lines


# --- the build's compat step -----------------------------------------------------------------

@dataclass(frozen=True)
class CompatResult:
    kernel_package: str
    kernel_version: str
    zfs_package: str
    zfs_version: str
    linux_min: str
    linux_max: str
    mask_lines: tuple
    bounds_from: str  # the ebuild the bounds were read from, or the fallback table


def _select_kernel(tree, arch: str, atom: Atom, pin: str | None, stable: list) -> str:
    if atom.operator == "=" and not atom.glob and atom.version not in stable:
        if atom.version not in list_ebuild_versions(tree, atom.package):
            raise UserError(f"kernel.sources: {atom.package}-{atom.version} is not in the "
                            f"snapshot ({tree}); choose a version the snapshot has")
        if f"~{arch}" not in ebuild_keywords(read_ebuild(tree, atom.package, atom.version)):
            raise UserError(f"kernel.sources: {atom.package}-{atom.version} is not keyworded "
                            f"for {arch} in {tree}; choose another version")
        return atom.version
    selected = select_version(stable, atom, pin)
    if selected is None:
        constraint = " and ".join(filter(None, [
            f"kernel.version {pin}" if pin else None,
            f"atom {atom.operator}{atom.package}-{atom.version}" if atom.operator else None,
        ])) or "no constraint"
        raise UserError(f"{tree}: no stable ({arch}) {atom.package} matches {constraint}; "
                        f"stable versions there: {', '.join(stable) or 'none'}")
    return selected


def snapshot_compat(tree, arch: str = "amd64", kernel_package="sys-kernel/gentoo-kernel",
                    kernel_pin: str | None = None, zfs_package="sys-fs/zfs",
                    ranges_path=ZFS_KERNEL_RANGES) -> CompatResult:
    """Resolve the kernel and ZFS versions a build on this snapshot gets and check they fit.

    `tree` is where the snapshot is read: a CommitTree or a SquashfsTree. `kernel_package` is a package or atom (genkernel's kernel.sources, e.g.
    `=sys-kernel/gentoo-sources-6.6.30`); `kernel_pin` is kernel.version (e.g. "6.12").
    Raises UserError when they do not fit, naming the newest kernel that would.
    """
    atom = parse_atom(kernel_package)
    if kernel_pin is not None:
        _check_pin(str(kernel_pin))
        kernel_pin = str(kernel_pin)
    stable_kernels = stable_versions(tree, atom.package, arch)
    kernel_version = _select_kernel(tree, arch, atom, kernel_pin, stable_kernels)
    stable_zfs = stable_versions(tree, zfs_package, arch)
    if not stable_zfs:
        raise UserError(f"{tree}: no stable ({arch}) {zfs_package} ebuild; check zfs_package "
                        f"or use a newer snapshot")
    zfs_version = max(stable_zfs, key=version_key)
    from_ebuild = snapshot_kernel_range(tree, zfs_package, zfs_version)
    if from_ebuild:
        linux_min, linux_max, bounds_from = from_ebuild
    else:
        ranges = load_ranges(ranges_path)
        linux_min, linux_max = zfs_kernel_range(zfs_version, ranges)
        bounds_from = f"{ranges.path} (fallback: the snapshot's ZFS ebuilds state no MODULES_KERNEL_MAX)"
    check_fit(zfs_version, kernel_version, (linux_min, linux_max), stable_kernels, atom.package)
    virtuals = (list_ebuild_versions(tree, DIST_KERNEL_VIRTUAL)
                if atom.package in DIST_KERNEL_PACKAGES else [])
    return CompatResult(atom.package, kernel_version, zfs_package, zfs_version, linux_min,
                        linux_max, tuple(kernel_mask_lines(atom.package, kernel_version, virtuals)),
                        bounds_from)
