"""Kernel `.config` validation: what ZFS and the live-boot path need from a kernel.

Two kinds of input: a full `.config` (genkernel path: everything must be right) and a
fragment (dist-kernel path: it is applied on top of gentoo-kernel's distribution config, so
only what the fragment itself changes can break anything). `deep_check` additionally runs a
real kernel tree's own Kconfig over a full config to find options that do not exist or that
`olddefconfig` drops because their dependencies are not met.
"""
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from gentoo_zfs_livecd.errors import UserError

_SET_LINE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET_LINE = re.compile(r"^#\s*(CONFIG_[A-Za-z0-9_]+) is not set\s*$")
_VERSION_HEADER = re.compile(r"^#\s*Linux/(\S+)\s+(\S+)\s+Kernel Configuration\s*$")
_OPTION_NAME = re.compile(r"^(CONFIG_)?([A-Za-z0-9_]+)$")


@dataclass
class KernelConfig:
    """Option name (with CONFIG_) -> value as written after `=` ("y", "m", '"str"', "0x10").

    `# CONFIG_X is not set` is stored as "n"; an option not mentioned is absent.
    """
    values: dict = field(default_factory=dict)
    version: str | None = None
    arch: str | None = None


def parse_config(text: str, source: str = "<config>") -> KernelConfig:
    """Parse a `.config` or fragment; a later line for the same option wins, as in Kconfig."""
    config = KernelConfig()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            unset = _UNSET_LINE.match(line)
            if unset:
                config.values[unset.group(1)] = "n"
                continue
            header = _VERSION_HEADER.match(line)
            if header and config.version is None:
                config.arch, config.version = header.group(1), header.group(2)
            continue
        setting = _SET_LINE.match(line)
        if not setting:
            raise UserError(
                f"{source}:{number}: cannot parse {line!r}; write CONFIG_NAME=value or "
                f"'# CONFIG_NAME is not set'"
            )
        config.values[setting.group(1)] = setting.group(2).strip()
    return config


def read_config(path) -> KernelConfig:
    """Read and parse a kernel config file; a missing file is a UserError."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"{path}: kernel config not found; check the path in the build config")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file; a kernel .config or fragment is expected")
    return parse_config(text, str(path))


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def _as_number(value: str):
    try:
        return int(value, 0)
    except ValueError:
        return None


def _describe_value(option: str, value: str | None) -> str:
    if value is None:
        return f"{option} is absent"
    if value == "n":
        return f"{option} is not set"
    return f"{option}={value}"


@dataclass(frozen=True)
class Rule:
    """One requirement on one option. `want` is "y", "m", "y/m", "off" or "=<exact value>"."""
    option: str
    want: str
    obsolete: str | None = None

    def satisfied_by(self, value: str | None) -> bool:
        if self.want in ("y", "m"):
            return value == self.want
        if self.want == "y/m":
            return value in ("y", "m")
        if self.want == "off":
            return value in (None, "n")
        wanted = _unquote(self.want[1:])
        if value is None:
            return False
        actual = _unquote(value)
        if actual == wanted:
            return True
        numbers = _as_number(actual), _as_number(wanted)
        return None not in numbers and numbers[0] == numbers[1]

    def describe_want(self) -> str:
        fixed = {"y": "y", "m": "m", "y/m": "y or m", "off": "it off"}.get(self.want)
        if fixed:
            return fixed
        wanted = _unquote(self.want[1:])
        return wanted if _as_number(wanted) is not None else f'"{wanted}"'

    def describe_short(self) -> str:
        if self.want == "off":
            return f"{self.option} off"
        return f"{self.option}={self.want.lstrip('=')}"


@dataclass(frozen=True)
class AnyOf:
    """Satisfied when every rule of at least one alternative holds."""
    alternatives: tuple

    def rules(self):
        return [rule for alternative in self.alternatives for rule in alternative]

    def describe_want(self) -> str:
        parts = []
        for alternative in self.alternatives:
            text = " and ".join(rule.describe_short() for rule in alternative)
            parts.append(f"({text})" if len(alternative) > 1 else text)
        return " or ".join(parts)


_PREEMPT_REASON = (
    "obsolete since 2012-08-24: OpenZFS removed its CONFIG_PREEMPT check (f86373f5b2, "
    "closes #83); any preemption model works"
)
_KALLSYMS_REASON = (
    "obsolete since 2014-10-01: the SPL KALLSYMS check (2013) went away with 44778f4110 "
    "'Remove kallsyms_lookup_name() wrapper'; KALLSYMS is optional (useful for debugging)"
)


def _rules(spec: dict, obsolete: str | None = None) -> list:
    return [Rule(f"CONFIG_{name}", want, obsolete) for name, want in spec.items()]


RULE_SETS = {
    # OpenZFS config/kernel-config-defined.m4: ./configure fails without these.
    "openzfs": _rules({
        "MODULES": "y", "BLOCK": "y", "ZLIB_INFLATE": "y/m", "ZLIB_DEFLATE": "y/m",
        "TRIM_UNUSED_KSYMS": "off", "DEBUG_LOCK_ALLOC": "off",
    }),
    # sys-fs/zfs-kmod pkg_setup CONFIG_CHECK (USE=rootfs is the default); linux-info treats a
    # plain name as "y or m" and "!NAME" as "must be off".
    "gentoo-zfs": _rules({
        "EFI_PARTITION": "y/m", "ZLIB_DEFLATE": "y/m", "ZLIB_INFLATE": "y/m",
        "DEBUG_LOCK_ALLOC": "off", "PAX_KERNEXEC_PLUGIN_METHOD_OR": "off",
        "BLK_DEV_INITRD": "y/m", "DEVTMPFS": "y/m",
    }),
    # dracut dmsquash-live booting root=live:CDLABEL=... from the ISO, on BIOS and UEFI.
    "livecd": _rules({"BLK_DEV_INITRD": "y", "RD_XZ": "y", "SQUASHFS": "y/m"}) + [
        AnyOf(((Rule("CONFIG_SQUASHFS_XZ", "y"),), (Rule("CONFIG_SQUASHFS_ZSTD", "y"),))),
    ] + _rules({"ISO9660_FS": "y/m", "JOLIET": "y", "BLK_DEV_LOOP": "y/m"}) + [
        AnyOf((
            (Rule("CONFIG_OVERLAY_FS", "y/m"),),
            (Rule("CONFIG_BLK_DEV_DM", "y/m"), Rule("CONFIG_DM_SNAPSHOT", "y/m")),
        )),
    ] + _rules({"EFI": "y", "EFI_STUB": "y", "VFAT_FS": "y/m", "DEVTMPFS": "y"}),
    # What the CD's own tools are for (config.yaml livecd.packages): the filesystems
    # e2fsprogs, xfsprogs, btrfs-progs and dosfstools create, the EFI variables efibootmgr
    # writes, md RAID for mdadm, device-mapper for lvm2, and dm-crypt with cryptsetup's
    # default LUKS2 cipher aes-xts-plain64. WERROR off: new compiler warnings must not stop
    # the kernel or the out-of-tree ZFS module.
    "installer": _rules({
        "EXT4_FS": "y/m", "XFS_FS": "y/m", "BTRFS_FS": "y/m", "VFAT_FS": "y/m", "EFIVAR_FS": "y/m",
        "MD": "y", "BLK_DEV_MD": "y/m", "MD_RAID0": "y/m", "MD_RAID1": "y/m", "MD_RAID10": "y/m",
        "MD_RAID456": "y/m", "BLK_DEV_DM": "y/m", "DM_CRYPT": "y/m", "CRYPTO_AES": "y/m",
        "CRYPTO_XTS": "y/m", "WERROR": "off",
    }),
    # What the 2013 tutorial demanded; kept so old configs get an explanation, not an error.
    "legacy-2013": (_rules({"KALLSYMS": "y"}, _KALLSYMS_REASON)
                    + _rules({"PREEMPT_NONE": "y"}, _PREEMPT_REASON)),
}

USER_RULE_SET = "user"
_AMBIGUOUS_WANTS = {"yes", "no", "on", "true", "false", "enabled", "disabled", "module",
                    "builtin", "built-in", "y/n", "n/y", "m/n", "n/m", "unset"}


def _user_want(key: str, wanted) -> str:
    if isinstance(wanted, bool) or not isinstance(wanted, (str, int)):
        raise UserError(
            f"kernel rule {key}: wanted value {wanted!r} is not a string; write \"y\", \"m\", "
            f"\"y/m\", \"off\" or the exact value in quotes (YAML reads bare off/yes as booleans)"
        )
    text = str(wanted).strip()
    if "\n" in text:
        raise UserError(f"kernel rule {key}: wanted value spans several lines; give one value")
    if text in ("y", "m"):
        return text
    if text in ("y/m", "m/y"):
        return "y/m"
    if text in ("off", "n"):
        return "off"
    if text.lower() in _AMBIGUOUS_WANTS or text in ("Y", "M", "N"):
        raise UserError(
            f"kernel rule {key}: wanted value {text!r} is ambiguous; use y, m, y/m, off or an "
            f"exact value"
        )
    return "=" + text


def user_rules_to_rules(user_rules: dict) -> list:
    """Turn {"CONFIG_X": "y" | "m" | "y/m" | "off" | "<exact value>"} into Rules."""
    if not isinstance(user_rules, dict):
        raise UserError(
            f"kernel rules: expected a mapping of CONFIG_NAME to wanted value, got "
            f"{type(user_rules).__name__}"
        )
    rules = []
    for key, wanted in user_rules.items():
        name = _OPTION_NAME.match(str(key))
        if not name:
            raise UserError(
                f"kernel rule {key!r}: not a kernel option name; write CONFIG_NAME or NAME "
                f"(letters, digits, underscores)"
            )
        rules.append(Rule(f"CONFIG_{name.group(2)}", _user_want(str(key), wanted)))
    return rules


def _selected_rule_sets(rule_set_names, user_rules) -> list:
    """[(rule set name, [rules])] in the order given, user rules last."""
    names = [rule_set_names] if isinstance(rule_set_names, str) else list(rule_set_names or ())
    unknown = [name for name in names if name not in RULE_SETS]
    if unknown:
        raise UserError(
            f"unknown kernel rule set {', '.join(map(repr, unknown))}; known rule sets: "
            f"{', '.join(RULE_SETS)}"
        )
    selected = [(name, RULE_SETS[name]) for name in names]
    if user_rules:
        selected.append((USER_RULE_SET, user_rules_to_rules(user_rules)))
    return selected


@dataclass(frozen=True)
class Finding:
    """`level` is "error" or "obsolete" (a legacy requirement that no longer applies)."""
    level: str
    message: str


def _rule_fails(rule: Rule, values: dict, fragment: bool) -> bool:
    if fragment and rule.option not in values:
        return False
    return not rule.satisfied_by(values.get(rule.option))


def _group_fails(group: AnyOf, values: dict, fragment: bool) -> bool:
    return all(any(_rule_fails(rule, values, fragment) for rule in alternative)
               for alternative in group.alternatives)


def _finding(source: str, item, rule_set: str, observed: str, strict_legacy: bool) -> Finding:
    message = f"{source}: {observed}, rule set {rule_set} wants {item.describe_want()}"
    obsolete = getattr(item, "obsolete", None)
    if obsolete and not strict_legacy:
        return Finding("obsolete", f"{message} ({obsolete})")
    return Finding("error", message)


def _check_item(item, values, fragment, source, rule_set, strict_legacy):
    if isinstance(item, AnyOf):
        if not _group_fails(item, values, fragment):
            return None
        mentioned = [rule.option for rule in item.rules()
                     if not fragment or rule.option in values]
        observed = ", ".join(_describe_value(option, values.get(option))
                             for option in dict.fromkeys(mentioned))
        return _finding(source, item, rule_set, observed, strict_legacy)
    if not _rule_fails(item, values, fragment):
        return None
    return _finding(source, item, rule_set, _describe_value(item.option, values.get(item.option)),
                    strict_legacy)


def check(config: KernelConfig, rule_set_names, user_rules=None, fragment=False,
          strict_legacy=False, source="<config>") -> list:
    """Findings for every rule the config breaks; a fragment is judged only on what it sets."""
    findings = []
    for rule_set, items in _selected_rule_sets(rule_set_names, user_rules):
        for item in items:
            finding = _check_item(item, config.values, fragment, source, rule_set, strict_legacy)
            if finding:
                findings.append(finding)
    return findings


def errors(findings) -> list:
    """Only the findings that must fail a build."""
    return [finding for finding in findings if finding.level == "error"]


# --- Kconfig files of a real kernel tree -------------------------------------------------

@dataclass
class KconfigDefinition:
    location: str
    depends: list  # dependency expressions, enclosing if/menu/choice first


@dataclass
class KconfigIndex:
    definitions: dict = field(default_factory=dict)  # NAME (no CONFIG_) -> [KconfigDefinition]
    selectors: dict = field(default_factory=dict)    # NAME -> [(selecting NAME, condition)]


_ENTRY_KEYWORDS = ("config", "menuconfig", "choice", "endchoice", "menu", "endmenu", "if",
                   "endif", "comment", "source", "osource", "rsource", "orsource", "mainmenu")


def _indent_width(line: str) -> int:
    """Column of the first non-blank character, tabs advancing to the next multiple of 8."""
    column = 0
    for character in line:
        if character == "\t":
            column = (column // 8 + 1) * 8
        elif character == " ":
            column += 1
        else:
            break
    return column


def _logical_lines(text: str):
    """(line number, line) with backslash continuations joined, as the Kconfig lexer does."""
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield start, pending + line
        pending = ""
    if pending:
        yield start, pending


def _source_paths(argument: str, keyword: str, current: Path, tree: Path, srcarch: str):
    pattern = argument.strip().strip('"')
    pattern = pattern.replace("$(SRCARCH)", srcarch).replace("$SRCARCH", srcarch)
    if "$" in pattern:
        return []
    base = current.parent if keyword in ("rsource", "orsource") else tree
    return sorted(base.glob(pattern)) if any(c in pattern for c in "*?[") else [base / pattern]


def _parse_kconfig_file(path: Path, tree: Path, srcarch: str, outer: list, index, seen):
    if path in seen or not path.is_file():
        return
    seen.add(path)
    frames = []       # dependency lists of enclosing if/menu/choice blocks in this file
    entry = None      # what a `depends on` / `select` line belongs to
    help_indent = None
    in_help = False
    for number, line in _logical_lines(path.read_text(errors="replace")):
        stripped = line.strip()
        if in_help:
            if not stripped:
                continue
            width = _indent_width(line)
            if help_indent is None:
                help_indent = width
                continue
            if width >= help_indent:
                continue
            in_help = False
        if not stripped or stripped.startswith("#"):
            continue
        keyword, argument = (stripped.split(None, 1) + [""])[:2]
        argument = _strip_comment(argument)
        if keyword in ("help", "---help---"):
            in_help, help_indent = True, None
            continue
        if keyword not in _ENTRY_KEYWORDS:
            _parse_attribute(stripped, entry, index)
            continue
        enclosing = outer + [dep for frame in frames for dep in frame]
        entry = None
        if keyword in ("config", "menuconfig"):
            definition = KconfigDefinition(f"{path.relative_to(tree)}:{number}", list(enclosing))
            index.definitions.setdefault(argument, []).append(definition)
            entry = ("config", argument, definition.depends)
        elif keyword in ("menu", "choice"):
            frames.append([])
            entry = ("block", None, frames[-1])
        elif keyword == "if":
            frames.append([argument])
        elif keyword in ("endmenu", "endchoice", "endif") and frames:
            frames.pop()
        elif keyword.endswith("source"):
            for sourced in _source_paths(argument, keyword, path, tree, srcarch):
                _parse_kconfig_file(sourced, tree, srcarch, enclosing, index, seen)


_DEPENDS = re.compile(r"^depends\s+on\s+(.*)$")
_SELECT = re.compile(r"^select\s+([A-Za-z0-9_]+)(?:\s+if\s+(.*))?$")


def _strip_comment(text: str) -> str:
    return re.sub(r"\s#.*$", "", text).strip()


def _parse_attribute(stripped: str, entry, index):
    if entry is None:
        return
    kind, name, depends = entry
    line = _strip_comment(stripped)
    depends_on = _DEPENDS.match(line)
    if depends_on:
        depends.append(" ".join(depends_on.group(1).split()))
        return
    select = _SELECT.match(line) if kind == "config" else None
    if select:
        index.selectors.setdefault(select.group(1), []).append((name, select.group(2)))


def _srcarch(arch: str | None) -> str:
    if not arch or arch in ("x86_64", "i386", "x86"):
        return "x86"
    return {"aarch64": "arm64", "ppc64": "powerpc", "ppc64le": "powerpc"}.get(arch, arch)


def read_kconfig_index(tree, srcarch: str = "x86") -> KconfigIndex:
    """Every `config` entry reachable from the tree's top-level Kconfig, with its dependencies."""
    tree = Path(tree).resolve()
    index = KconfigIndex()
    _parse_kconfig_file(tree / "Kconfig", tree, srcarch, [], index, set())
    return index


# --- Kconfig dependency expressions --------------------------------------------------------

_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|&&|\|\||!=|<=|>=|[!=<>()]|[A-Za-z0-9_.\-+]+)')
_TRISTATE = {"n": 0, "m": 1, "y": 2}


def _tokens(expression: str) -> list:
    tokens, position = [], 0
    expression = expression.rstrip()
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if not match:
            raise ValueError(f"cannot parse Kconfig expression {expression!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def _is_constant(token: str) -> bool:
    return token in _TRISTATE or token.startswith('"') or _as_number(token) is not None


class _Evaluator:
    """Kconfig's tristate logic: n=0, m=1, y=2; && is min, || is max, ! is 2-x."""

    def __init__(self, values: dict, tokens: list):
        self.values, self.tokens, self.position = values, tokens, 0

    def peek(self):
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self):
        token = self.peek()
        self.position += 1
        return token

    def parse_or(self):
        value = self.parse_and()
        while self.peek() == "||":
            self.take()
            value = max(value, self.parse_and())
        return value

    def parse_and(self):
        value = self.parse_not()
        while self.peek() == "&&":
            self.take()
            value = min(value, self.parse_not())
        return value

    def parse_not(self):
        if self.peek() == "!":
            self.take()
            return 2 - self.parse_not()
        if self.peek() == "(":
            self.take()
            value = self.parse_or()
            self.take()
            return value
        left = self.take()
        if self.peek() in ("=", "!=", "<", ">", "<=", ">="):
            operator, right = self.take(), self.take()
            return 2 if _compare(self.text(left), operator, self.text(right)) else 0
        return _TRISTATE.get(self.text(left), 0)

    def text(self, token):
        if token is None:
            return "n"
        if _is_constant(token):
            return _unquote(token)
        return _unquote(self.values.get(f"CONFIG_{token}", "n"))


def _compare(left: str, operator: str, right: str) -> bool:
    numbers = _as_number(left), _as_number(right)
    a, b = numbers if None not in numbers else (left, right)
    return {"=": a == b, "!=": a != b, "<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[operator]


def evaluate(expression: str, values: dict) -> int:
    """Tristate value (0, 1, 2) of a Kconfig expression under the given config values."""
    return _Evaluator(values, _tokens(expression)).parse_or()


def _expression_symbols(expression: str) -> list:
    return list(dict.fromkeys(token for token in _tokens(expression)
                              if token not in ("&&", "||", "!", "(", ")", "=", "!=", "<", ">",
                                               "<=", ">=") and not _is_constant(token)))


def _is_toolchain_test(expression: str) -> bool:
    return "$(" in expression


def _explain_expression(expression: str, values: dict) -> str:
    if _is_toolchain_test(expression):
        return f"{expression} (a compiler/linker test of this toolchain)"
    symbols = _expression_symbols(expression)
    readable = expression
    for symbol in symbols:
        readable = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(symbol)}(?![A-Za-z0-9_])",
                          f"CONFIG_{symbol}", readable)
    states = ", ".join(_describe_value(f"CONFIG_{symbol}", values.get(f"CONFIG_{symbol}"))
                       for symbol in symbols)
    return f"{readable} ({states})" if states else readable


def _needed_level(value: str | None) -> int:
    return _TRISTATE.get(value, 2)


def _unmet_dependencies(definitions: list, needed: int, values: dict) -> list:
    """(location, [unmet expressions]) of the first definition whose dependencies are unmet.

    Toolchain tests ($(cc-option,...)) cannot be evaluated without the kernel's own macro
    engine, so they are named only when no symbol dependency explains the drop."""
    for definition in definitions:
        unmet = [dep for dep in definition.depends
                 if not _is_toolchain_test(dep) and evaluate(dep, values) < needed]
        if unmet:
            return definition.location, unmet
    for definition in definitions:
        tests = [dep for dep in definition.depends if _is_toolchain_test(dep)]
        if tests:
            return definition.location, tests
    return None


def _explain_drop(rule: Rule, before: str, after: str | None, index: KconfigIndex,
                  values: dict) -> str:
    name = rule.option[len("CONFIG_"):]
    if rule.want == "off":
        selectors = [selector for selector, condition in index.selectors.get(name, ())
                     if values.get(f"CONFIG_{selector}") in ("y", "m")
                     and (condition is None or _is_toolchain_test(condition)
                          or evaluate(condition, values) > 0)]
        request = f"{rule.option} off requested, but olddefconfig made it {after}"
        if selectors:
            return f"{request}: it is selected by " + ", ".join(f"CONFIG_{s}" for s in selectors)
        return f"{request}: a default or select turns it on"
    request = f"{rule.option}={before} requested, but olddefconfig "
    request += "turned it off" if after in (None, "n") else f"made it {after}"
    unmet = _unmet_dependencies(index.definitions[name], _needed_level(before), values)
    if unmet:
        location, expressions = unmet
        reasons = " and ".join(_explain_expression(expression, values)
                               for expression in expressions)
        return f"{request}: it depends on {reasons} [{location}]"
    return (f"{request}: its dependencies hold, so another option of its choice group won or "
            f"its type does not allow {before}")


def _explain_failed_rule(rule, item, before_values, after_values, index, source, rule_set):
    name = rule.option[len("CONFIG_"):]
    if name not in index.definitions:
        return Finding("error", f"{source}: {rule.option} is required by rule set {rule_set} "
                                f"(it wants {item.describe_want()}), but no Kconfig file of this "
                                f"kernel defines it")
    before = before_values.get(rule.option)
    if rule.satisfied_by(before):
        explanation = _explain_drop(rule, before, after_values.get(rule.option), index,
                                    after_values)
        return Finding("error", f"{source}: {explanation}; rule set {rule_set} wants "
                                f"{item.describe_want()}")
    return None


def _run_olddefconfig(config_path: Path, tree: Path, build_dir: Path, srcarch: str):
    shutil.copyfile(config_path, build_dir / ".config")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("KCONFIG_", "KBUILD_")) and key not in ("MAKEFLAGS", "MFLAGS")}
    argv = ["make", "-s", "-C", str(tree), f"O={build_dir}", f"ARCH={srcarch}", "olddefconfig"]
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise UserError(f"{tree}: 'make olddefconfig' failed for {config_path}: {lines[-1]}")
    return read_config(build_dir / ".config")


def _require_tree_and_tools(tree: Path):
    if not (tree / "Kconfig").is_file() or not (tree / "Makefile").is_file():
        raise UserError(f"{tree}: not a kernel source tree (no top-level Kconfig and Makefile); "
                        f"point the deep check at an unpacked kernel source")
    missing = [tool for tool in ("gcc", "make", "flex", "bison") if shutil.which(tool) is None]
    if missing:
        raise UserError(f"the kernel config deep check needs {', '.join(missing)}; install "
                        f"them (Debian: apt-get install -y gcc make flex bison)")


def deep_check(config_path, source_tree, rule_set_names, user_rules=None,
               strict_legacy=False) -> list:
    """Run the tree's own `make olddefconfig` on a copy of a full config and report every
    required option that this kernel does not define or that did not survive, with the unmet
    dependency; rules that already fail before olddefconfig are reported as `check` does."""
    config_path, tree = Path(config_path), Path(source_tree).resolve()
    _require_tree_and_tools(tree)
    before = read_config(config_path)
    rule_sets = _selected_rule_sets(rule_set_names, user_rules)
    srcarch = _srcarch(before.arch)
    with tempfile.TemporaryDirectory(prefix="kconfig-deep-") as build_dir:
        after = _run_olddefconfig(config_path, tree, Path(build_dir), srcarch)
    index = read_kconfig_index(tree, srcarch)
    source = str(config_path)
    findings = []
    for rule_set, items in rule_sets:
        for item in items:
            findings.extend(_deep_findings(item, before, after, index, source, rule_set,
                                           strict_legacy))
    return findings


def _deep_findings(item, before, after, index, source, rule_set, strict_legacy):
    """Why each failing rule fails after olddefconfig: missing from Kconfig, dropped by
    olddefconfig (with the unmet dependency), or simply not requested (the plain message)."""
    plain = _check_item(item, after.values, False, f"{source} after olddefconfig", rule_set,
                        strict_legacy)
    if plain is None:
        return []
    if plain.level != "error":
        return [plain]
    explained = []
    for rule in item.rules() if isinstance(item, AnyOf) else [item]:
        if not rule.satisfied_by(after.values.get(rule.option)):
            finding = _explain_failed_rule(rule, item, before.values, after.values, index,
                                              source, rule_set)
            if finding:
                explained.append(finding)
    return explained or [plain]
