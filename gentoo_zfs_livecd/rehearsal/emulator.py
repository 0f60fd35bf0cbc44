"""A Catalyst 4 emulator, for rehearsals and tests: `python -m gentoo_zfs_livecd.rehearsal.emulator <catalyst args>`.

It reads catalyst.conf and specs with the project's own parser and rules, checks the seed,
the snapshot and the paths the way Catalyst does (catalyst-4.md §1-§5), exits as Catalyst
exits, and writes small placeholder artifacts at exactly Catalyst's paths; for
livecd-stage2 a real small ISO whose live root carries a ZFS module for its kernel. It builds
nothing: every line it logs says it is an emulation.
"""
import argparse
import gzip
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from pathlib import Path

from gentoo_zfs_livecd.catalyst import grammar

LABEL = "[emulated catalyst]"
USAGE_SNAPSHOT = "-s SNAPSHOT, --snapshot SNAPSHOT  generate a release snapshot from a git-treeish"
STAGE_SEQUENCE = ["unpack", "setup_confdir", "portage_overlay", "bind", "chroot_setup",
                  "setup_environment", "run_local", "preclean", "unbind", "clean", "capture"]
ISO_SEQUENCE = ["unpack", "setup_confdir", "bind", "chroot_setup", "setup_environment", "run_local",
                "build_kernel", "bootloader", "preclean", "livecd_update", "root_overlay",
                "fsscript", "rcupdate", "unmerge", "remove", "empty", "clean", "target_setup",
                "setup_overlay", "create_iso", "capture"]


class Failure(Exception):
    """A CatalystError: logged, exit code 2 (or 1 where Catalyst dies with log.critical)."""

    def __init__(self, text, code=2):
        super().__init__(text)
        self.code = code


def log(level: str, text: str) -> None:
    stamp = time.strftime("%d %b %Y %H:%M:%S UTC", time.gmtime())
    print(f"{stamp}: {level:<8}: {LABEL} {text}", flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="catalyst", add_help=False)
    parser.add_argument("-h", "--help", action="store_true")
    parser.add_argument("-V", "--version", action="store_true")
    parser.add_argument("-c", "--configs", action="append", default=[])
    parser.add_argument("-f", "--file")
    parser.add_argument("-s", "--snapshot")
    parser.add_argument("-a", "--clear-autoresume", action="store_true")
    parser.add_argument("-T", "--purgetmponly", action="store_true")
    parser.add_argument("-p", "--purge", action="store_true")
    return parser.parse_args(argv)


def read_conf(files) -> dict:
    """catalyst.conf as Catalyst 4 reads it: TOML, unknown keys fatal, `options` required."""
    keys = grammar.catalyst_keys()["catalyst_conf_4x"]
    conf = dict(keys["defaults"])
    for name in files:
        try:
            values = tomllib.loads(Path(name).read_text())
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise Failure(f"Could not read config file {name}: {err}", 1)
        for key in values:
            if key not in keys["valid_keys_4.1.1"]:
                raise Failure(f"Unknown option '{key}' in config file {name}", 1)
        conf.update(values)
    if not isinstance(conf.get("options"), list):
        raise Failure("catalyst.conf: 'options' must be an array (AttributeError in Catalyst)", 1)
    conf["repos_storedir"] = conf["repos_storedir"].replace("%(storedir)s", conf["storedir"])
    return conf


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.help:
        print("usage: catalyst [-h] [-V] [-f FILE | -s SNAPSHOT] [-c CONFIGS] ...\n"
              f"  {USAGE_SNAPSHOT}\n  (emulated by gentoo-zfs-livecd: builds nothing)")
        return 0
    if args.version:
        print("Catalyst 4.1.1 (emulated by gentoo-zfs-livecd)")
        return 0
    try:
        conf = read_conf(args.configs)
        if args.snapshot:
            snapshot(conf, args.snapshot)
        elif args.file:
            build(conf, Path(args.file), args)
        else:
            raise Failure("catalyst: error: one of -f/--file or -s/--snapshot is required", 2)
    except Failure as err:
        log("ERROR", str(err))
        return err.code
    return 0


def snapshot(conf: dict, treeish: str) -> None:
    """`catalyst -s`: `git archive <treeish>` of the bare repo into `gentoo-<sha>.sqfs`."""
    repo = Path(conf["repos_storedir"]) / f"{conf['repo_name']}.git"
    sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", f"{treeish}^{{commit}}"],
                         capture_output=True, text=True)
    if sha.returncode != 0:
        raise Failure(f"snapshot: unknown tree-ish {treeish!r} in {repo}")
    name = treeish if treeish != "stable" else sha.stdout.strip()
    log("NOTICE", f"Creating {conf['repo_name']} tree snapshot {sha.stdout.strip()} from {repo}")
    target = Path(conf["storedir"]) / "snapshots" / f"{conf['repo_name']}-{name}.sqfs"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # tar(1) unpacks: TarFile.extractall's safe `filter` needs Python 3.11.4, Debian 12 has 3.11.2.
        archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", name],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True, capture_output=True)
        subprocess.run(["mksquashfs", tmp, str(target), "-noappend", "-quiet", "-all-root"],
                       check=True, capture_output=True)


def build(conf: dict, spec_file: Path, args) -> None:
    if not spec_file.is_file():
        raise Failure(f"catalyst: error: argument -f/--file: {spec_file} does not exist", 2)
    text = spec_file.read_text()
    problems = grammar.lint(text, str(spec_file))
    if problems:
        raise Failure("\n\tAlso: ".join(problems))
    values = grammar.parse(text, str(spec_file)).values
    storedir = Path(conf["storedir"])
    sqfs = storedir / "snapshots" / f"{conf['repo_name']}-{values['snapshot_treeish']}.sqfs"
    if not sqfs.is_file():
        raise Failure(f"Couldn't mount: {sqfs}")
    seed = find_seed(storedir / "builds" / values["source_subpath"])
    subpath = f"{values['rel_type']}/{values['target']}-{values['subarch']}-{values['version_stamp']}"
    if args.purgetmponly:
        log("NOTICE", f"purging {storedir / 'tmp' / subpath}")
        return
    log("NOTICE", f"Building {subpath} ({'fresh' if args.clear_autoresume else 'resuming'})")
    for step in ISO_SEQUENCE if values["target"] == "livecd-stage2" else STAGE_SEQUENCE:
        log("NOTICE", f"--- Running action sequence: {step}")
    extension = grammar.tarball_extension(values.get("compression_mode", "lbzip2"))
    tarball = storedir / "builds" / f"{subpath}.{extension}"
    packages = installed_packages(values, tree_packages(sqfs))
    if values["target"] == "livecd-stage2":
        # The live root is installcd-stage1's root with the kernel built into it.
        packages = {**seed_packages(seed), **packages}
    write_tarball(tarball, text, packages)
    if values["target"] == "livecd-stage2":
        write_iso(values, storedir, sqfs, live_root_packages(values, packages))


def find_seed(path: Path) -> Path:
    """Catalyst's seed lookup (catalyst-4.md §4.2): the file, or exactly one `<path>.*`."""
    if path.is_file():
        return path
    skip = (".CONTENTS", ".CONTENTS.gz", ".DIGESTS", ".sha256")
    matches = [p for p in path.parent.glob(path.name + ".*") if not p.name.endswith(skip)]
    if len(matches) > 1:
        raise Failure(f"Ambiguous Filename: {path} ({', '.join(sorted(m.name for m in matches))})")
    if not matches:
        raise Failure(f"File Not Found: {path}")
    return matches[0]


def tree_packages(sqfs: Path) -> dict:
    """`cat/pn` -> (PF, eclasses) of the newest stable (`amd64`) ebuild of each package in a
    snapshot, eclasses from its `inherit` lines: what emerge would install from that tree."""
    found = {}
    with tempfile.TemporaryDirectory(prefix="tree-") as tmp:
        root = Path(tmp) / "tree"
        subprocess.run(["unsquashfs", "-n", "-d", str(root), str(sqfs), "*/*/*.ebuild"], check=True,
                       capture_output=True)
        for ebuild in sorted(root.glob("*/*/*.ebuild")):
            text = ebuild.read_text()
            if not re.search(r'^KEYWORDS="[^"]*(?<![~\w-])amd64', text, re.M):
                continue
            eclasses = tuple(name for line in re.findall(r"^inherit (.*)$", text, re.M) for name in line.split())
            cp = f"{ebuild.parent.parent.name}/{ebuild.parent.name}"
            pf = ebuild.name[:-len(".ebuild")]
            if cp not in found or _version_key(pf) > _version_key(found[cp][0]):
                found[cp] = (pf, eclasses)
    return found


def seed_packages(seed: Path) -> dict:
    """`cat/PF` -> eclasses of the stage tarball a build starts from."""
    from gentoo_zfs_livecd.rebuild.holdings import VdbCollector
    collector = VdbCollector()
    with tarfile.open(seed, "r:*") as archive:
        for member in archive:
            content = (lambda m=member: archive.extractfile(m).read()) if member.isfile() else None
            collector.add(member.name, content)
    return collector.packages


def _version_key(pf: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"[.-]", pf)]


def installed_packages(values: dict, tree: dict) -> dict:
    """`cat/PF` -> eclasses a stage of this target holds: the system set for stage1-3, plus the
    spec's CD packages (livecd-stage1) and kernel packages (livecd-stage2). Packages the tree
    does not have are left out."""
    wanted = list(SYSTEM_SET)
    if values["target"].startswith("livecd-"):
        wanted += _atoms(values.get("livecd/packages"))
    if values["target"] == "livecd-stage2":
        for key, value in values.items():
            if re.fullmatch(r"boot/kernel/[^/]+/(sources|packages)", key):
                wanted += _atoms(value)
        if "boot/kernel/gentoo/distkernel" in values:
            wanted.append("sys-kernel/gentoo-kernel")
        if "sys-fs/zfs" in wanted:
            # sys-fs/zfs pulls in its kernel module unless USE=kernel-builtin: RDEPEND
            # `!kernel-builtin? ( ~sys-fs/zfs-kmod-${PV}:= )` (gentoo/gentoo,
            # sys-fs/zfs/zfs-2.1.16.ebuild, commit 0a4d39c02294).
            wanted.append("sys-fs/zfs-kmod")
    return {f"{cp.split('/')[0]}/{tree[cp][0]}": tree[cp][1] for cp in dict.fromkeys(wanted) if cp in tree}


def _atoms(value) -> list:
    values = [value] if isinstance(value, str) else list(value or [])
    return [item.split(":")[0] for item in values if "/" in item]


def write_tarball(tarball: Path, spec_text: str, packages: dict) -> None:
    """A small tarball whose content differs per build, as a real rebuild's would, holding
    Portage's database of `packages` (`cat/PF` -> eclasses), named `./...` as Catalyst's are."""
    tarball.parent.mkdir(parents=True, exist_ok=True)
    note = f"{LABEL} built {time.time_ns()}\n{spec_text}".encode()
    members = {"./etc/catalyst-emulation": note}
    for cpv, eclasses in packages.items():
        members[f"./var/db/pkg/{cpv}/PF"] = f"{cpv.split('/')[1]}\n".encode()
        if eclasses:
            members[f"./var/db/pkg/{cpv}/INHERITED"] = f"{' '.join(eclasses)}\n".encode()
    mode = {"bz2": "w:bz2", "xz": "w:xz", "gz": "w:gz"}.get(tarball.name.rsplit(".", 1)[-1], "w")
    with tarfile.open(tarball, mode) as out:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    write_contents(tarball, "".join(f"{name}\n" for name in members))


def write_contents(artifact: Path, listing: str) -> None:
    with gzip.open(artifact.with_name(artifact.name + ".CONTENTS.gz"), "wt") as out:
        out.write(listing)


def live_root_packages(values: dict, packages: dict) -> dict:
    """What `livecd/unmerge` leaves of the ISO's packages in its live root."""
    from gentoo_zfs_livecd.rebuild.atoms import cp_of_atom, cp_of_cpv
    unmerged = {cp_of_atom(atom) for atom in _atoms(values.get("livecd/unmerge"))}
    return {cpv: eclasses for cpv, eclasses in packages.items() if cp_of_cpv(cpv) not in unmerged}


def write_iso(values: dict, storedir: Path, sqfs: Path, packages: dict) -> None:
    from gentoo_zfs_livecd.kernel import zfscompat
    from gentoo_zfs_livecd.rehearsal import fakeiso
    compat = zfscompat.snapshot_compat(zfscompat.SquashfsTree(sqfs))
    release = compat.kernel_version + local_version(values)
    iso = Path(values["livecd/iso"])
    if not iso.is_absolute():
        iso = storedir / "builds" / values["rel_type"] / iso
    bootargs = values.get("livecd/bootargs") or ""
    fakeiso.build_iso(iso, values["livecd/volid"], kernel_release=release,
                      zfs_version=f"{compat.zfs_version}-r0-gentoo",
                      boot_args=bootargs if isinstance(bootargs, str) else " ".join(bootargs), packages=packages)
    write_contents(iso, f"{LABEL} ISO listing\n")


def local_version(values: dict) -> str:
    """The release suffix: the fragment's CONFIG_LOCALVERSION, else gentoo-kernel's own."""
    from gentoo_zfs_livecd.kernel import kconfig
    path = values.get("boot/kernel/gentoo/config")
    if path:
        setting = kconfig.read_config(Path(path)).values.get("CONFIG_LOCALVERSION")
        if setting is not None:
            return str(setting).strip('"')
    return "-gentoo-dist" if "boot/kernel/gentoo/distkernel" in values else "-gentoo"


# --- what a rehearsal needs instead of the network ------------------------------------------

# The system set every stage holds; each is an ebuild of the tiny tree below.
SYSTEM_SET = ("sys-apps/baselayout", "sys-libs/glibc")
EBUILDS = {
    "sys-apps/baselayout/baselayout-2.17.ebuild": 'KEYWORDS="amd64 arm64"\n',
    "sys-libs/glibc/glibc-2.41-r5.ebuild": 'inherit toolchain-funcs flag-o-matic\nKEYWORDS="amd64 arm64"\n',
    "app-misc/screen/screen-4.9.1-r1.ebuild": 'inherit flag-o-matic pam\nKEYWORDS="amd64 arm64"\n',
    "sys-fs/zfs-kmod/zfs-kmod-2.3.4.ebuild": 'inherit linux-mod-r1\nKEYWORDS="amd64 arm64"\n',
    "eclass/toolchain-funcs.eclass": "# toolchain-funcs\n",
    "eclass/flag-o-matic.eclass": "# flag-o-matic\n",
    "eclass/pam.eclass": "# pam\n",
    "eclass/linux-mod-r1.eclass": "# linux-mod-r1\n",
    "profiles/base/make.defaults": 'USE="ipv6"\n',
    "profiles/base/packages": "*sys-apps/baselayout\n*sys-libs/glibc\n",
    "profiles/default/linux/amd64/23.0/parent": "../../../../base\n",
    "profiles/default/linux/amd64/23.0/make.defaults": 'CHOST="x86_64-pc-linux-gnu"\n',
    "profiles/default/linux/amd64/23.0/no-multilib/parent": "..\n",
    "profiles/default/linux/amd64/23.0/no-multilib/make.defaults": 'MULTILIB_ABIS="amd64"\n',
    "profiles/package.mask": "# masks\n",
    "sys-kernel/gentoo-kernel/gentoo-kernel-6.12.41.ebuild": 'KEYWORDS="amd64 arm64"\n',
    "sys-kernel/gentoo-kernel/gentoo-kernel-6.18.2.ebuild": 'KEYWORDS="~amd64 ~arm64"\n',
    "sys-kernel/gentoo-sources/gentoo-sources-6.12.41.ebuild": 'KEYWORDS="amd64 arm64"\n',
    "virtual/dist-kernel/dist-kernel-6.12.41.ebuild": 'KEYWORDS="amd64 arm64"\n',
    "sys-fs/zfs/zfs-2.3.4.ebuild": 'KEYWORDS="amd64 arm64"\n',
    "profiles/repo_name": "gentoo\n",
    "metadata/layout.conf": "masters =\nrepo-name = gentoo\n",
}


def portage_upstream(path: Path) -> Path:
    """A tiny gentoo.git with a `stable` branch, made once; the same commit every time."""
    if (path / "HEAD").exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in EBUILDS.items():
            (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / name).write_text(text)
        env = dict(os.environ, GIT_AUTHOR_NAME="rehearsal", GIT_AUTHOR_EMAIL="rehearsal@localhost",
                   GIT_COMMITTER_NAME="rehearsal", GIT_COMMITTER_EMAIL="rehearsal@localhost",
                   GIT_AUTHOR_DATE="2026-01-01T00:00:00Z", GIT_COMMITTER_DATE="2026-01-01T00:00:00Z")
        for argv in (["init", "-q", "-b", "stable"], ["add", "-A"],
                     ["-c", "commit.gpgsign=false", "commit", "-q", "-m", "emulated portage tree"]):
            subprocess.run(["git", "-C", tmp, *argv], env=env, check=True, capture_output=True)
        staging = path.with_name(path.name + ".tmp")
        subprocess.run(["git", "clone", "-q", "--bare", tmp, str(staging)], check=True, capture_output=True)
        os.replace(staging, path)
    return path


def make_seed(path: Path) -> Path:
    """A placeholder stage3 tarball (stable bytes, so the seed pin does not move)."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as out:
        note = f"{LABEL} placeholder seed stage3\n".encode()
        info = tarfile.TarInfo("etc/catalyst-emulation-seed")
        info.size, info.mtime = len(note), 0
        out.addfile(info, io.BytesIO(note))
    from gentoo_zfs_livecd.atomic import write_bytes
    write_bytes(path, buffer.getvalue())
    return path

