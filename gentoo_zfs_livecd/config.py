"""config.yaml: loaded once, checked against a declared schema, frozen.

Every problem is one line that names `config.yaml:<key>`. Values that end up in a Catalyst spec
or in catalyst.conf are checked the way Catalyst would read them, so config cannot inject keys.
"""
import json
import re
from pathlib import Path

from gentoo_zfs_livecd.checkout import ROOT
from gentoo_zfs_livecd.catalyst.grammar import volume_id_problem
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
    """One config key: its type (str, int, bool, list, dict, "path", "str?" ...), default, whether
    the value is written into a spec or catalyst.conf, allowed choices, and an extra check
    (callable(value) -> problem text or None)."""
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


def _treeish(value):
    if value != "stable" and not re.fullmatch(r"[0-9a-f]{7,40}", value):
        return "must be 'stable' or a git commit id (hexadecimal)"
    return None


def _at_least_one_day(value):
    if value < 1:
        return "must be at least 1 (days), or null for never"
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
    "storedir": Field("path", "/var/tmp/catalyst", spec=True),
    "arch": Field(str, "amd64", spec=True),
    "subarch": Field(str, "amd64", spec=True),
    "rel_type": Field(str, "23.0-zfs", spec=True, check=_no_slash_or_space),
    "profile": Field(str, "default/linux/amd64/23.0", spec=True),
    "version_stamp": Field(str, "auto", spec=True, check=_no_slash_or_space),
    "compression_mode": Field(str, "pixz", spec=True, choices=COMPRESSION_MODES),
    "stages": Field(list, ["stage1", "stage3"]),
    "repos": Field(list, [], spec=True),
    "catalyst.command": Field(list, ["catalyst"]),
    "catalyst.jobs": Field(int, 4),
    "catalyst.load_average": Field("float?", None),
    "catalyst.pkgcache": Field(bool, True),
    "catalyst.kerncache": Field(bool, True),
    "catalyst.distdir": Field("path", "/var/cache/distfiles", spec=True),
    "catalyst.binhost": Field("str?", None, spec=True),
    "snapshot.treeish": Field(str, "stable", spec=True, check=_treeish),
    "snapshot.repo_url": Field(str, "https://anongit.gentoo.org/git/repo/sync/gentoo.git"),
    "snapshot.keyring": Field("path", RELEASE_KEYRING, spec=True),
    "snapshot.fingerprint": Field(str, SYNC_REPO_KEY, check=_fingerprint),
    "snapshot.keep": Field(int, 3),
    "snapshot.rebuild": Field(str, "relevant", choices=("relevant", "always")),
    "snapshot.full_rebuild_days": Field("int?", 7, check=_at_least_one_day),
    "seed.file": Field("path?", None),
    "seed.mirrors": Field(list, ["https://distfiles.gentoo.org"]),
    "seed.flavour": Field(str, "openrc", spec=True),
    "seed.keyring": Field("path", RELEASE_KEYRING),
    "seed.fingerprint": Field(str, RELEASE_KEY, check=_fingerprint),
    "seed.keep": Field(int, 2),
    "portage.stages_confdir": Field("path", "overlay/portage/stages", spec=True),
    "portage.isos_confdir": Field("path", "overlay/portage/isos", spec=True),
    "portage.prefix": Field(str, "releng", spec=True),
    "kernel.mode": Field(str, "dist", choices=("dist", "genkernel")),
    "kernel.sources": Field("str?", None, spec=True),
    "kernel.config": Field("path", "kernel-configs/dist-livecd.config", spec=True),
    "kernel.version": Field("str?", None),
    "kernel.rules": Field(list, list(RULE_SETS)),
    "kernel.extra_rules": Field(dict, {}),
    "kernel.strict_legacy": Field(bool, False),
    "kernel.source_tree": Field("path?", None),
    "kernel.packages": Field(list, ["--usepkg", "n", "--getbinpkg", "n", "sys-fs/zfs"], spec=True),
    "kernel.dracut_args": Field(list, [
        "--xz", "--no-hostonly", "-a", "dmsquash-live", "-a", "dmsquash-live-ntfs", "-a", "mdraid",
        "-o", "btrfs", "-o", "crypt", "-o", "i18n", "-o", "usrmount", "-o", "lunmask", "-o", "qemu",
        "-o", "qemu-net", "-o", "nvdimm", "-o", "multipath", "-i", "/lib/keymaps", "/lib/keymaps",
        "-I", "busybox"], spec=True),
    "livecd.profile": Field(str, "default/linux/amd64/23.0/no-multilib", spec=True),
    "livecd.iso": Field(str, "install-amd64-zfs-{version_stamp}.iso", spec=True, check=_bare_name),
    "livecd.volid": Field(str, "Gentoo-ZFS-amd64-{datestamp}", spec=True),
    "livecd.type": Field(str, "gentoo-release-minimal", spec=True,
                         choices=("generic-livecd", "gentoo-release-minimal")),
    "livecd.bootargs": Field(list, ["dokeymap", "nodhcp"], spec=True),
    "livecd.use": Field(list, ["compile-locales", "fbcon", "livecd", "socks5", "unicode", "xml"], spec=True),
    "livecd.packages": Field(list, CD_PACKAGES, spec=True),
    "livecd.rcadd": Field(list, ["dbus|default", "NetworkManager|default"], spec=True),
    "livecd.fsscript": Field("path", "overlay/fsscripts/livecd-stage2.sh", spec=True),
    "livecd.root_overlay": Field("path", "overlay/root_overlay", spec=True),
    "livecd.overlay": Field("path", "overlay/cd_overlay", spec=True),
    "digests.algorithms": Field(list, ["blake2b", "sha512", "md5", "sha1"]),
    "digests.sign_key": Field("str?", None),
    "digests.gnupg_home": Field("path?", None),
    "publish.dir": Field("path", "/var/lib/gentoo-zfs-livecd/releases"),
    "publish.keep": Field(int, 4),
    "publish.upload": Field("str?", None),
    "boottest.enabled": Field(str, "auto", choices=("auto", "true", "false")),
    "boottest.timeout": Field(int, 1800),
    "boottest.accel": Field(str, "auto", choices=("auto", "kvm", "tcg")),
    "boottest.memory": Field(int, 2048),
    "boottest.qemu": Field(str, "qemu-system-x86_64"),
    "notify.smtp.host": Field("str?", None),
    "notify.smtp.port": Field(int, 25),
    "notify.smtp.from": Field("str?", None),
    "notify.smtp.to": Field(list, []),
    "notify.webhook.url": Field("str?", None),
    "notify.on_success": Field(bool, False),
    "nightly.keep_logs": Field(int, 14),
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
    key = [str(path), stat.st_mtime_ns, stat.st_size]
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
        write_text(cache, json.dumps({"key": key, "raw": raw}))
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
        value = str(value)
    if not isinstance(value, base):
        raise problem(path, key, f"must be a {_type_name(base)}, not {type(value).__name__} {value!r}")
    if base is list:
        for item in value:
            if not isinstance(item, (str, int)) or isinstance(item, bool):
                raise problem(path, key, f"must be a list of strings; {item!r} is not one")
        value = [str(item) for item in value]
    if spec_field.spec:
        _check_spec_bound(path, key, value)
    if spec_field.choices and value not in spec_field.choices:
        raise problem(path, key, f"{value!r} is not one of: {', '.join(spec_field.choices)}")
    if spec_field.check:
        text = spec_field.check(value)
        if text:
            raise problem(path, key, f"{value!r} {text}")
    if kind in ("path", "path?"):
        value = str((root / value).resolve()) if value else value
    if key == "repos":
        value = [str((root / item).resolve()) for item in value]
    return value


def _type_name(kind):
    return {str: "string", int: "whole number", bool: "true or false", list: "list", dict: "mapping"}[kind]


def _check_spec_bound(path, key, value):
    """Catalyst cuts values at '#', %-formats them and starts a new key at a newline."""
    for item in value if isinstance(value, list) else [value]:
        if not isinstance(item, str):
            continue
        for char, why in (("\n", "a newline would start a new spec key"),
                          ("#", "Catalyst cuts the value at '#' (comment)"),
                          ("%", "Catalyst %-formats spec values; a '%' breaks it")):
            if char in item:
                raise problem(path, key, f"{item!r} contains {char!r}: {why}; remove it")


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
    if not Path(values["kernel.config"]).is_file():
        raise problem(path, "kernel.config", f"{values['kernel.config']} does not exist; "
                                             "point it at a kernel config file")
    if values["seed.file"] and not Path(values["seed.file"]).is_file():
        raise problem(path, "seed.file", f"{values['seed.file']} does not exist; "
                                         "give a stage3 tarball or remove the key to download one")
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
