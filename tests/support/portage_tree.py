"""A tiny ebuild repository with real git history, standing in for gentoo.git.

Its layout follows Gentoo's (gentoo/gentoo): categories with ebuilds and metadata.xml,
`eclass/`, `metadata/md5-cache/<cat>/<PF>`, `metadata/layout.conf`, and `profiles/` with a
profile inheriting through `parent` files in the three forms Portage reads (relative,
`:path`, `gentoo:path`), a sub-profile that is not inherited, the repository-wide
`profiles/package.mask` and `profiles/updates/`.
"""
import os
import subprocess
from pathlib import Path

from gentoo_zfs_livecd.rebuild.atoms import cp_of_cpv

PROFILE = "default/linux/amd64/23.0"
SYSTEM = {"sys-apps/baselayout-2.17": (), "sys-libs/glibc-2.41-r5": ("toolchain-funcs", "flag-o-matic")}
CD_ONLY = {"app-misc/screen-4.9.1-r1": ("flag-o-matic", "pam")}
LIVE_ROOT = {"sys-fs/zfs-2.3.4": ("linux-info", "flag-o-matic"), "sys-fs/zfs-kmod-2.3.4": ("linux-mod-r1",)}
KERNEL_PACKAGES = ("sys-fs/zfs-kmod", "sys-fs/zfs")
UNMERGED = ("sys-kernel/gentoo-kernel", "sys-kernel/dracut")
UNHELD = "app-misc/unheld-1.0"

FILES = {
    "metadata/layout.conf": "masters =\nrepo-name = gentoo\nprofile-formats = portage-2\n",
    "metadata/timestamp.chk": "Thu, 01 Jan 2026 00:00:00 +0000\n",
    "metadata/news/2026-01-01-example/2026-01-01-example.en.txt": "Title: example\n",
    "profiles/repo_name": "gentoo\n",
    "profiles/arch.list": "amd64\n",
    "profiles/eapi": "5\n",
    "profiles/package.mask": "# masks\n>=dev-lang/example-2\n",
    "profiles/updates/1Q-2026": "move app-misc/old-name app-misc/new-name\n",
    "profiles/use.desc": "zfs - ZFS support\n",
    "profiles/base/make.defaults": 'USE="ipv6"\n',
    "profiles/base/packages": "*sys-apps/baselayout\n*sys-libs/glibc\n",
    "profiles/base/package.use.mask": "sys-libs/glibc multilib-bootstrap\n",
    "profiles/arch/base/make.defaults": 'ARCH_BASE="1"\n',
    "profiles/arch/amd64/parent": "../base\n",
    "profiles/arch/amd64/make.defaults": 'ARCH="amd64"\n',
    "profiles/features/multilib/make.defaults": 'MULTILIB_ABIS="amd64 x86"\n',
    "profiles/default/linux/parent": "../../base\n",
    "profiles/default/linux/make.defaults": 'ELIBC="glibc"\n',
    "profiles/default/linux/amd64/parent": "..\n:arch/amd64\n",
    "profiles/default/linux/amd64/make.defaults": 'CHOST="x86_64-pc-linux-gnu"\n',
    "profiles/default/linux/amd64/23.0/parent": "..\ngentoo:features/multilib\n",
    "profiles/default/linux/amd64/23.0/make.defaults": 'PROFILE_VERSION="23.0"\n',
    "profiles/default/linux/amd64/23.0/desktop/parent": "..\n",
    "profiles/default/linux/amd64/23.0/desktop/make.defaults": 'USE="X"\n',
    "eclass/toolchain-funcs.eclass": "# toolchain-funcs\n",
    "eclass/flag-o-matic.eclass": "# flag-o-matic\n",
    "eclass/pam.eclass": "# pam\n",
    "eclass/linux-info.eclass": "# linux-info\n",
    "eclass/linux-mod-r1.eclass": "# linux-mod-r1\n",
    "eclass/kernel-build.eclass": "# kernel-build\n",
    "eclass/unused.eclass": "# inherited by no held package\n",
    "eclass/tests/flag-o-matic.sh": "# eclass tests\n",
    "licenses/GPL-2": "GNU GPL 2\n",
}
ALL_PACKAGES = {**SYSTEM, **CD_ONLY, **LIVE_ROOT,
                "sys-kernel/gentoo-kernel-6.12.41": ("kernel-build",), "sys-kernel/dracut-107": (), UNHELD: ("unused",)}


def _package_files(cpv: str, eclasses) -> dict:
    category, pf = cpv.split("/")
    pn = cp_of_cpv(cpv).split("/")[1]
    inherit = f"inherit {' '.join(eclasses)}\n" if eclasses else ""
    return {
        f"{category}/{pn}/{pf}.ebuild": f'EAPI=8\n{inherit}KEYWORDS="amd64"\n',
        f"{category}/{pn}/metadata.xml": "<pkgmetadata/>\n",
        f"metadata/md5-cache/{category}/{pf}": "EAPI=8\n_eclasses_=" +
        "\t".join(f"{name}\t{'0' * 32}" for name in eclasses) + "\n",
    }


class PortageTree:
    """A work tree committing one change at a time, mirrored into a bare `gentoo.git`."""

    def __init__(self, root: Path):
        self.work = root / "gentoo"
        self.bare = root / "gentoo.git"
        self.count = 0
        files = dict(FILES)
        for cpv, eclasses in ALL_PACKAGES.items():
            files.update(_package_files(cpv, eclasses))
        self.run("init", "-q", "-b", "stable", str(self.work), cwd=root)
        self.head = self.commit(files, "initial tree")
        self.run("clone", "-q", "--bare", str(self.work), str(self.bare), cwd=root)

    def run(self, *args, cwd=None) -> str:
        env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@localhost", GIT_COMMITTER_NAME="t",
                   GIT_COMMITTER_EMAIL="t@localhost", GIT_AUTHOR_DATE=f"2026-01-01T00:00:{self.count:02d}Z",
                   GIT_COMMITTER_DATE=f"2026-01-01T00:00:{self.count:02d}Z")
        done = subprocess.run(["git", "-c", "commit.gpgsign=false", *args], cwd=cwd or self.work, env=env,
                              capture_output=True, text=True, check=True)
        return done.stdout

    def commit(self, files: dict, message: str) -> str:
        """Write (or, for None, delete) `files`, commit, push to the bare repository; the new SHA."""
        for name, text in files.items():
            path = self.work / name
            if text is None:
                path.unlink()
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.count += 1
        self.run("add", "-A")
        self.run("commit", "-q", "-m", message)
        self.head = self.run("rev-parse", "HEAD").strip()
        if self.bare.exists():
            self.run("push", "-q", str(self.bare), "stable")
        return self.head

    def append(self, name: str, text: str, message: str) -> str:
        return self.commit({name: (self.work / name).read_text() + text}, message)


class UpstreamWork:
    """A work tree of a bare gentoo.git with a `stable` branch (the emulator's): commit, push."""

    def __init__(self, bare, where):
        self.work = where
        self.git("clone", "-q", "--branch", "stable", str(bare), str(where), cwd=where.parent)

    def git(self, *args, cwd=None, date="2026-01-01T00:00:00Z") -> str:
        env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@localhost", GIT_COMMITTER_NAME="t",
                   GIT_COMMITTER_EMAIL="t@localhost", GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
        return subprocess.run(["git", "-c", "commit.gpgsign=false", *args], cwd=cwd or self.work, env=env,
                              capture_output=True, text=True, check=True).stdout

    def commit(self, changes: dict, date: str) -> str:
        """Append each text to its file (a new file for a new path), commit dated `date` (UTC);
        the new commit."""
        for name, text in changes.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text((path.read_text() if path.exists() else "") + text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "one change", date=date)
        self.git("push", "-q", "origin", "stable")
        return self.git("rev-parse", "HEAD").strip()
