"""config.yaml: loaded once, checked against a declared schema, frozen.

Every problem is one line that names `config.yaml:<key>`. Values that end up in a Catalyst spec
or in catalyst.conf are checked the way Catalyst would read them, so config cannot inject keys.
"""
import json
import re
from stat import S_IMODE
from pathlib import Path

from gentoo_zfs_livecd.checkout import ROOT
from gentoo_zfs_livecd.catalyst.grammar import PATH, TEXT, WORD, value_problem, volume_id_problem
from gentoo_zfs_livecd.errors import UserError

# Both keys are in gentoo-release.asc (sec-keys/openpgp-keys-gentoo-release-20260125, gentoo/gentoo
# commit 0ba7d8b1). The release key signs stage3 listings and DIGESTS; the repository mirrors'
# key signs the commits of the sync repository (repo/sync/gentoo.git, gentoo-mirror/gentoo).
RELEASE_KEY = "13EBBDBEDE7A12775DFDB1BABB572E0E2D182910"
SYNC_REPO_KEY = "EF9538C9E8E64311A52CDEDFA13D0EF1914E7A72"
RELEASE_KEYRING = "/usr/share/openpgp-keys/gentoo-release.asc"
STAGES = ("stage1", "stage2", "stage3")
RULE_SETS = ("openzfs", "gentoo-zfs", "livecd", "installer", "legacy-2013")
# Catalyst's plain tarball modes (their extensions: grammar.tarball_extension).
COMPRESSION_MODES = ("lbzip2", "bzip2", "xz", "pixz", "gzip", "tar", "lzip", "lzma", "lzop")


class Field:
    """One config key: its type (str, int, bool, list, dict, "path", "str?", "switch" ...), default,
    the kind of value it is when written into a spec or catalyst.conf (grammar.VALUE_KINDS; None:
    it is not), allowed choices, and an extra check (callable(value) -> problem text or None)."""
    __slots__ = ("kind", "default", "spec", "choices", "check")

    def __init__(self, kind, default=None, spec=False, choices=(), check=None):
        self.kind, self.default, self.spec, self.choices, self.check = kind, default, spec, choices, check


def _no_slash_or_space(value):
    if value != "auto" and not re.fullmatch(r"[A-Za-z0-9._+-]+", value):
        return "must be 'auto' or a name without '/', spaces or other special characters"
    return None


def _fingerprint(value):
    if not re.fullmatch(r"[0-9A-Fa-f]{40}", value.replace(" ", "")):
        return "must be a 40-digit hexadecimal OpenPGP fingerprint"
    return None


def _fingerprint_or_any(value):
    """A pinned key, or `any`: any key of the keyring (the raw gentoo.git's developer keys)."""
    return None if value == "any" else _fingerprint(value)


def _treeish(value):
    if value != "stable" and not re.fullmatch(r"[0-9a-f]{40}", value):
        return ("must be 'stable' or a full 40-digit git commit id (lower-case hexadecimal); "
                "a short id is ambiguous: `git rev-parse` gives the full one")
    return None


def _at_least(least, unit):
    def check(value):
        if value < least:
            return f"must be at least {least}{unit}"
        return None
    return check


def _at_least_one_day(value):
    if value < 1:
        return "must be at least 1 (days), or null for never"
    return None


def _port(value):
    if not 1 <= value <= 65535:
        return "must be a TCP port, 1 to 65535"
    return None


def _not_an_option(value):
    if value.startswith("-"):
        return "starts with '-', so rsync would read it as an option; give a destination (host:path)"
    return None


def _bare_name(value):
    if "/" in value:
        return "must be a bare file name: Catalyst writes it into <storedir>/builds/<rel_type>/"
    return None


# What the install CD carries besides @system (installcd-stage1's livecd/packages).
CD_PACKAGES = [
    "app-admin/pwgen",
    "app-admin/sudo",
    "app-admin/sysklogd",
    "app-arch/unzip",
    "app-crypt/gnupg",
    "app-editors/nano",
    "app-editors/vim",
    "app-misc/livecd-tools",
    "app-misc/screen",
    "app-misc/tmux",
    "app-portage/gentoolkit",
    "app-portage/mirrorselect",
    "net-misc/chrony",
    "net-misc/curl",
    "net-misc/dhcpcd",
    "net-misc/iputils",
    "net-misc/networkmanager",
    "net-misc/openssh",
    "net-misc/rsync",
    "net-misc/wget",
    "net-wireless/iw",
    "net-wireless/wpa_supplicant",
    "sys-apps/busybox",
    "sys-apps/dmidecode",
    "sys-apps/gptfdisk",
    "sys-apps/iproute2",
    "sys-apps/memtest86+",
    "sys-apps/nvme-cli",
    "sys-apps/pciutils",
    "sys-apps/usbutils",
    "sys-block/parted",
    "sys-boot/efibootmgr",
    "sys-boot/grub",
    "sys-fs/btrfs-progs",
    "sys-fs/cryptsetup",
    "sys-fs/dosfstools",
    "sys-fs/e2fsprogs",
    "sys-fs/lvm2",
    "sys-fs/mdadm",
    "sys-fs/ntfs3g",
    "sys-fs/xfsprogs",
    "sys-kernel/linux-firmware",
    "sys-process/htop",
]

SCHEMA = {
    # One token: the ISO spec names a package cache under it (pkgcache_path), and Catalyst splits
    # spec values at whitespace.
    "storedir": Field("path", "/var/tmp/catalyst", spec=WORD),
    "arch": Field(str, "amd64", spec=WORD),
    "subarch": Field(str, "amd64", spec=WORD),
    "rel_type": Field(str, "23.0-zfs", spec=WORD, check=_no_slash_or_space),
    "profile": Field(str, "default/linux/amd64/23.0", spec=WORD),
    "version_stamp": Field(str, "auto", spec=WORD, check=_no_slash_or_space),
    "compression_mode": Field(str, "pixz", spec=WORD, choices=COMPRESSION_MODES),
    "stages": Field(list, ["stage1", "stage3"]),
    "repos": Field(list, [], spec=WORD),
    "catalyst.command": Field(list, ["catalyst"]),
    "catalyst.jobs": Field(int, 4, check=_at_least(1, " (parallel jobs)")),
    "catalyst.load_average": Field("float?", None),
    "catalyst.pkgcache": Field(bool, True),
    "catalyst.kerncache": Field(bool, True),
    "catalyst.distdir": Field("path", "/var/cache/distfiles", spec=PATH),
    "catalyst.binhost": Field("str?", None, spec=WORD),
    "snapshot.treeish": Field(str, "stable", spec=WORD, check=_treeish),
    "snapshot.repo_url": Field(str, "https://anongit.gentoo.org/git/repo/sync/gentoo.git"),
    "snapshot.keyring": Field("path", RELEASE_KEYRING, spec=PATH),
    "snapshot.fingerprint": Field(str, SYNC_REPO_KEY, check=_fingerprint_or_any),
    "snapshot.keep": Field(int, 3, check=_at_least(1, " (snapshots kept)")),
    "snapshot.rebuild": Field(str, "relevant", choices=("relevant", "always")),
    "snapshot.full_rebuild_days": Field("int?", 7, check=_at_least_one_day),
    "seed.file": Field("path?", None),
    "seed.mirrors": Field(list, ["https://distfiles.gentoo.org"]),
    "seed.flavour": Field(str, "openrc", spec=WORD),
    "seed.keyring": Field("path", RELEASE_KEYRING),
    "seed.fingerprint": Field(str, RELEASE_KEY, check=_fingerprint),
    "seed.keep": Field(int, 2, check=_at_least(1, " (seeds kept)")),
    "portage.stages_confdir": Field("path", "overlay/portage/stages", spec=PATH),
    "portage.isos_confdir": Field("path", "overlay/portage/isos", spec=PATH),
    "portage.prefix": Field(str, "releng", spec=WORD),
    "kernel.mode": Field(str, "dist", choices=("dist", "genkernel")),
    "kernel.sources": Field("str?", None, spec=WORD),
    "kernel.config": Field("path", "kernel-configs/dist-livecd.config", spec=WORD),
    "kernel.version": Field("str?", None),
    "kernel.rules": Field(list, list(RULE_SETS)),
    "kernel.extra_rules": Field(dict, {}),
    "kernel.strict_legacy": Field(bool, False),
    "kernel.source_tree": Field("path?", None),
    "kernel.packages": Field(list, ["--usepkg", "n", "--getbinpkg", "n", "sys-fs/zfs"], spec=WORD),
    "kernel.dracut_args": Field(list, [
        "--xz", "--no-hostonly", "-a", "dmsquash-live", "-a", "dmsquash-live-ntfs", "-a", "mdraid",
        "-o", "btrfs", "-o", "crypt", "-o", "i18n", "-o", "usrmount", "-o", "lunmask", "-o", "qemu",
        "-o", "qemu-net", "-o", "nvdimm", "-o", "multipath", "-i", "/lib/keymaps", "/lib/keymaps",
        "-I", "busybox"], spec=WORD),
    "livecd.profile": Field(str, "default/linux/amd64/23.0/no-multilib", spec=WORD),
    "livecd.iso": Field(str, "install-amd64-zfs-{version_stamp}.iso", spec=WORD, check=_bare_name),
    "livecd.volid": Field(str, "Gentoo-ZFS-amd64-{datestamp}", spec=TEXT),
    "livecd.type": Field(str, "gentoo-release-minimal", spec=WORD,
                         choices=("generic-livecd", "gentoo-release-minimal")),
    "livecd.bootargs": Field(list, ["dokeymap", "nodhcp"], spec=WORD),
    "livecd.use": Field(list, ["compile-locales", "fbcon", "livecd", "socks5", "unicode", "xml"], spec=WORD),
    "livecd.packages": Field(list, CD_PACKAGES, spec=WORD),
    "livecd.rcadd": Field(list, ["dbus|default", "NetworkManager|default"], spec=WORD),
    "livecd.fsscript": Field("path", "overlay/fsscripts/livecd-stage2.sh", spec=WORD),
    "livecd.root_overlay": Field("path", "overlay/root_overlay", spec=WORD),
    "livecd.overlay": Field("path", "overlay/cd_overlay", spec=WORD),
    "digests.algorithms": Field(list, ["blake2b", "sha512", "md5", "sha1"]),
    "digests.sign_key": Field("str?", None),
    "digests.gnupg_home": Field("path?", None),
    "publish.dir": Field("path", "/var/lib/gentoo-zfs-livecd/releases"),
    "publish.keep": Field(int, 4, check=_at_least(1, " (releases kept)")),
    "publish.upload": Field("str?", None, check=_not_an_option),
    "boottest.enabled": Field("switch", "auto"),
    "boottest.timeout": Field(int, 1800, check=_at_least(1, " (seconds)")),
    "boottest.accel": Field(str, "auto", choices=("auto", "kvm", "tcg")),
    "boottest.memory": Field(int, 2048, check=_at_least(256, " (MiB)")),
    "boottest.qemu": Field(str, "qemu-system-x86_64"),
    "notify.smtp.host": Field("str?", None),
    "notify.smtp.port": Field(int, 25, check=_port),
    "notify.smtp.from": Field("str?", None),
    "notify.smtp.to": Field(list, []),
    "notify.webhook.url": Field("str?", None),
    "notify.on_success": Field(bool, False),
    "nightly.keep_logs": Field(int, 14, check=_at_least(1, " (logs kept)")),
    "nightly.stale_lock_hours": Field(int, 20, check=_at_least(1, " (hours)")),
    "nightly.keep_caches": Field(int, 2, check=_at_least(0, " (unused Catalyst cache folders kept)")),
}


class Config:
    """The checked settings: `get('seed.mirrors')`; paths are absolute."""
    __slots__ = ("path", "values")

    def __init__(self, path: Path, values: dict):
        self.path, self.values = path, values

    def get(self, key):
        return self.values[key]

    def declared(self, keys) -> "Config":
        """The same settings, of which only `keys` may be read: a task's declared settings."""
        unknown = set(keys) - set(self.values)
        if unknown:
            raise KeyError(f"no such settings: {', '.join(sorted(unknown))}")
        return DeclaredConfig(self.path, {key: self.values[key] for key in keys})


class DeclaredConfig(Config):
    """A task's settings: reading one it did not declare is a programming error, said plainly."""
    __slots__ = ()

    def get(self, key):
        try:
            return self.values[key]
        except KeyError:
            raise LookupError(f"setting {key!r} is read but not declared by the task") from None


def problem(path, key, text):
    return UserError(f"{path.name}:{key}: {text}")


def read_yaml(path: Path, cache: Path | None = None):
    """The parsed YAML of `path`; `cache` keeps it as JSON, so `doit list` need not import yaml."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found; copy config.yaml or pass doit config=PATH")
    except OSError as err:
        raise UserError(f"{path}: config file cannot be read ({err.strerror}); pass doit config=PATH")
    not_a_file = _file_problem(path)
    if not_a_file:
        raise UserError(f"{not_a_file}; pass a YAML config file as doit config=PATH")
    key = [str(path), stat.st_mtime_ns, stat.st_size, S_IMODE(stat.st_mode)]
    if cache is not None:
        try:
            saved = json.loads(cache.read_text())
            if saved["key"] == key:
                return saved["raw"]
        except (FileNotFoundError, ValueError, KeyError):
            pass
    import yaml
    try:
        raw = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path.name}{where}: malformed YAML ({getattr(err, 'problem', err)}); fix the syntax")
    # Through JSON either way, so a cached and a fresh read give the same values (dates as text).
    raw = json.loads(json.dumps(raw, default=str))
    if cache is not None:
        from gentoo_zfs_livecd.atomic import write_text
        # The cache holds what the config holds: no one may read it who may not read the config.
        write_text(cache, json.dumps({"key": key, "raw": raw}), mode=S_IMODE(stat.st_mode) & 0o644)
    return raw


def load(path, cache: Path | None = None) -> Config:
    """Read, check and freeze the config file at `path`."""
    path = Path(path).absolute()
    raw = read_yaml(path, cache)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{path.name}: the top level must be a mapping of keys")
    flat = _flatten(path, raw)
    values = {}
    for key, spec_field in SCHEMA.items():
        # Relative paths the user wrote are relative to the config file; defaults to the project.
        base = path.parent if key in flat else ROOT
        value = flat.pop(key, spec_field.default)
        values[key] = _check_value(path, key, value, spec_field, base)
    if flat:
        key = sorted(flat)[0]
        raise problem(path, key, "unknown key; see the keys documented in config.yaml")
    _check_combinations(path, values)
    return Config(path, values)


def _flatten(path, raw, prefix=""):
    flat = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        # A dict-valued key (kernel.extra_rules) is a value, not a section.
        if isinstance(value, dict) and name not in SCHEMA:
            if not any(k.startswith(name + ".") for k in SCHEMA):
                raise problem(path, name, "unknown key; see the keys documented in config.yaml")
            flat.update(_flatten(path, value, name + "."))
        else:
            flat[name] = value
    return flat


def _check_value(path, key, value, spec_field, root):
    kind = spec_field.kind
    optional = isinstance(kind, str) and kind.endswith("?")
    if value is None:
        if optional:
            return None
        raise problem(path, key, "must not be empty")
    base = kind.rstrip("?") if isinstance(kind, str) else kind
    if base == "switch":
        return _switch(path, key, value)
    if base in ("path", "str"):
        base = str
    if base == "int":
        base = int
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise problem(path, key, f"must be a number, not {value!r}")
        return float(value)
    if base is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise problem(path, key, f"must be a whole number, not {value!r}")
    if base is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        raise problem(path, key, f"{value!r} is a number in YAML (6.10 reads as 6.1, 010 as 8); "
                                 f"quote it: {key.rpartition('.')[2]}: \"...\"")
    if not isinstance(value, base):
        raise problem(path, key, f"must be a {_type_name(base)}, not {type(value).__name__} {value!r}")
    if base is list:
        for item in value:
            if not isinstance(item, (str, int)) or isinstance(item, bool):
                raise problem(path, key, f"must be a list of strings; {item!r} is not one")
        value = [str(item) for item in value]
    if spec_field.choices and value not in spec_field.choices:
        raise problem(path, key, f"{value!r} is not one of: {', '.join(spec_field.choices)}")
    if spec_field.check:
        text = spec_field.check(value)
        if text:
            raise problem(path, key, f"{value!r} {text}")
    if kind in ("path", "path?") and value:
        value = _resolve(path, key, root / value)
    if key == "repos":
        value = [_resolve(path, key, root / item) for item in value]
    if spec_field.spec:
        for item in value if isinstance(value, list) else [value]:
            text = value_problem(item, spec_field.spec)
            if text:
                raise problem(path, key, text)
    return value


SWITCHES = {True: "true", False: "false", "auto": "auto", "true": "true", "false": "false"}


def _switch(path, key, value):
    """On, off or auto: YAML's booleans (true/false, yes/no, on/off) or the word auto."""
    if isinstance(value, (bool, str)) and value in SWITCHES:
        return SWITCHES[value]
    raise problem(path, key, f"{value!r} must be true, false or auto")


def _resolve(path, key, value: Path) -> str:
    try:
        return str(value.resolve())
    except (RuntimeError, OSError) as err:  # RuntimeError: a symlink loop before Python 3.13
        raise problem(path, key, f"{value} cannot be resolved ({getattr(err, 'strerror', None) or err}); "
                                 "a symlink loop? point it at a real path")


def _type_name(kind):
    return {str: "string", int: "whole number", bool: "true or false", list: "list", dict: "mapping"}[kind]


def _file_problem(value) -> str | None:
    """Why `value` is not a regular file to read, in the exact words for what it is instead."""
    import stat
    try:
        mode = Path(value).stat().st_mode
    except FileNotFoundError:
        return f"{value} does not exist"
    except OSError as err:
        return f"{value} cannot be read ({err.strerror})"
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISCHR, "a character device")):
        if test(mode):
            return f"{value} is {what}, not a regular file"
    return None


def _check_combinations(path, values):
    stages = values["stages"]
    for stage in stages:
        if stage not in STAGES:
            raise problem(path, "stages", f"unknown stage {stage!r}; choose from {', '.join(STAGES)}")
    if list(stages) != sorted(set(stages), key=STAGES.index) or "stage3" not in stages:
        raise problem(path, "stages", "must list stages in build order, each once, ending with stage3")
    for rule_set in values["kernel.rules"]:
        if rule_set not in RULE_SETS:
            raise problem(path, "kernel.rules", f"unknown rule set {rule_set!r}; choose from {', '.join(RULE_SETS)}")
    kernel_config = _file_problem(values["kernel.config"])
    if kernel_config:
        raise problem(path, "kernel.config", f"{kernel_config}; point it at a kernel config file")
    seed = values["seed.file"] and _file_problem(values["seed.file"])
    if seed:
        raise problem(path, "seed.file", f"{seed}; give a stage3 tarball or remove the key to download one")
    if not values["catalyst.command"]:
        raise problem(path, "catalyst.command", "must be a non-empty list, e.g. [catalyst]")
    if values["kernel.mode"] == "genkernel" and not values["kernel.sources"]:
        raise problem(path, "kernel.sources", "genkernel mode needs a sources atom, "
                                              "e.g. =sys-kernel/gentoo-sources-6.6.30")
    for key in ("livecd.iso", "livecd.volid"):
        try:
            expand(values[key], "20250101T000000Z", "20250101")
        except (KeyError, IndexError, ValueError):
            raise problem(path, key, f"{values[key]!r} may only use the fields "
                                     "{version_stamp} and {datestamp}")
    stamp = values["version_stamp"] if values["version_stamp"] != "auto" else "20250101T000000Z"
    volid = expand(values["livecd.volid"], stamp, "20250101")
    if volume_id_problem(volid):
        raise problem(path, "livecd.volid", volume_id_problem(volid))
    for item in values["digests.algorithms"]:
        import hashlib
        if item not in hashlib.algorithms_available or item.startswith("shake"):
            raise problem(path, "digests.algorithms", f"unknown algorithm {item!r}; use e.g. blake2b, sha512")


def expand(template: str, version_stamp: str, datestamp: str) -> str:
    """Fill `{version_stamp}` and `{datestamp}` into an ISO name or volume id."""
    return template.format(version_stamp=version_stamp, datestamp=datestamp)
