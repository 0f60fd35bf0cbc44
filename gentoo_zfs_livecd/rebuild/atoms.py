"""Package names as Portage writes them: `<category>/<PF>` directories and dependency atoms.

Version syntax as PMS states it (gentoo/pms, names.tex, commit 04bfd5ae9474): numbers separated
by dots, one optional letter, suffixes `_alpha _beta _pre _rc _p` each with an optional number,
an optional `-r<N>` revision. A package name must not end in a hyphen followed by digits, so the
first hyphen whose tail is a whole version starts the version.
"""
import fnmatch
import re

VERSION = r"\d+(?:\.\d+)*[a-z]?(?:_(?:alpha|beta|pre|rc|p)\d*)*(?:-r\d+)?"
_PF = re.compile(rf"(?P<pn>[A-Za-z0-9+_][A-Za-z0-9+_-]*?)-(?P<pvr>{VERSION})")
_OPERATORS = re.compile(r"^(?:!!|!)?(?:[<>]=?|=|~)?")
_CP = re.compile(r"[A-Za-z0-9+_*][A-Za-z0-9+_.*-]*/[A-Za-z0-9+_*][A-Za-z0-9+_*-]*")


def split_pf(pf: str) -> tuple[str, str] | None:
    """(PN, PVR) of a `<PN>-<PVR>` directory name, or None when it carries no version."""
    match = _PF.fullmatch(pf)
    return (match["pn"], match["pvr"]) if match else None


def cp_of_cpv(cpv: str) -> str | None:
    """`cat/pn` of `cat/pf` (a var/db/pkg entry or a metadata/md5-cache file), or None."""
    category, _, pf = cpv.partition("/")
    parts = split_pf(pf)
    return f"{category}/{parts[0]}" if category and parts else None


def cp_of_atom(atom: str) -> str | None:
    """`cat/pn` an atom names (`>=sys-fs/zfs-2.3:0/5[rootfs]::gentoo` -> `sys-fs/zfs`), or None.

    Wildcards (`*/*`, `sys-fs/*`) stay in the result; `matches` treats them as patterns.
    """
    atom = atom.strip()
    operator = _OPERATORS.match(atom).group(0)
    atom = re.split(r"[:\[]", atom[len(operator):], maxsplit=1)[0]
    if operator.lstrip("!"):
        category, _, rest = atom.partition("/")
        parts = split_pf(rest.rstrip("*"))
        if parts is None:
            return None
        atom = f"{category}/{parts[0]}"
    return atom if _CP.fullmatch(atom) else None


def matches(pattern: str, cps) -> list:
    """The names in `cps` that a (possibly wildcarded) `cat/pn` names, sorted."""
    if "*" not in pattern:
        return [pattern] if pattern in cps else []
    return sorted(cp for cp in cps if fnmatch.fnmatchcase(cp, pattern))
