"""The portage tree's history in the bare gentoo.git: what changed between two pinned commits,
which profiles a stage's profile inherits, and refs that keep every pinned commit.

The bare repository is fetched shallowly (`--depth=1`), so an old pinned commit stays only
while a ref names it: `git gc` prunes unreachable objects. Each commit a stage is built from
gets a ref under `refs/gentoo-zfs-livecd/pins/`, dropped when no stage is built from it any more.
"""
import posixpath
import subprocess
from functools import cache

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.inputs.gitrepo import git

from .atoms import cp_of_cpv

PIN_REFS = "refs/gentoo-zfs-livecd/pins/"


def pin_ref(sha: str) -> str:
    return PIN_REFS + sha


def keep_reachable(bare_repo, sha: str) -> None:
    """Name `sha` under the project's own refs, so `git gc` keeps its tree."""
    git(bare_repo, "update-ref", pin_ref(sha), sha)


def pinned(bare_repo) -> set:
    """The commits the project's refs keep."""
    out = git(bare_repo, "for-each-ref", "--format=%(refname)", PIN_REFS)
    return {line[len(PIN_REFS):] for line in out.splitlines() if line.startswith(PIN_REFS)}


def release_pins(bare_repo, keep) -> list:
    """Drop the project's refs of commits not in `keep`; returns the commits released."""
    released = sorted(pinned(bare_repo) - set(keep))
    for sha in released:
        git(bare_repo, "update-ref", "-d", pin_ref(sha))
    return released


def changed_paths(bare_repo, a: str, b: str) -> tuple:
    """Every path that differs between commits `a` and `b` (renames as deletion plus addition)."""
    out = git(bare_repo, "diff", "--name-only", "--no-renames", "-z", a, b,
              what=f"{bare_repo}: changes {a[:7]}..{b[:7]}")
    return tuple(sorted(name for name in out.split("\0") if name))


def changed_lines(bare_repo, a: str, b: str, path: str) -> tuple:
    """The lines of `path` removed or added between `a` and `b`, without their +/- mark."""
    out = git(bare_repo, "diff", "--no-renames", "--unified=0", a, b, "--", path,
              what=f"{bare_repo}: {path} {a[:7]}..{b[:7]}")
    lines = []
    for line in out.splitlines():
        if line.startswith(("+++", "---")):
            continue
        if line[:1] in ("+", "-"):
            lines.append(line[1:])
    return tuple(lines)


def read_blob(bare_repo, sha: str, path: str) -> str | None:
    """The text of `path` at commit `sha`, or None when that commit has no such file."""
    done = subprocess.run(["git", "--git-dir", str(bare_repo), "cat-file", "-e", f"{sha}:{path}"],
                          capture_output=True)
    if done.returncode != 0:
        return None
    return git(bare_repo, "cat-file", "blob", f"{sha}:{path}")


def list_paths(bare_repo, sha: str, directory: str) -> tuple:
    """Repository paths of the entries directly in `directory` at commit `sha` (none when absent)."""
    out = git(bare_repo, "ls-tree", "--name-only", sha, f"{directory.rstrip('/')}/",
              what=f"{bare_repo}: {directory} at {sha[:7]}")
    return tuple(out.splitlines())


def is_tree(bare_repo, sha: str, path: str) -> bool:
    done = subprocess.run(["git", "--git-dir", str(bare_repo), "cat-file", "-t", f"{sha}:{path}"],
                          capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.strip() == "tree"


def parent_dir(line: str, profile_dir: str, repo_name: str) -> str | None:
    """The repository path one line of a `parent` file names, None for another repository's.

    Portage's forms (gentoo/portage, lib/portage/package/ebuild/_config/LocationsManager.py,
    `_addProfile` and `_expand_parent_colon`, commit 0d9cd144937a): a path relative to the
    profile's directory; `:<path>` under this repository's `profiles/`; `<repo>:<path>` under
    that repository's `profiles/`.
    """
    repo, colon, path = line.partition(":")
    if not colon:
        return posixpath.normpath(posixpath.join(profile_dir, line))
    if repo and repo != repo_name:
        return None
    return posixpath.normpath(posixpath.join("profiles", path))


def profile_chain(bare_repo, sha: str, profile: str, repo_name: str = "gentoo") -> tuple:
    """Repository paths of a profile's directory and of every profile it inherits through
    `parent` files, recursively, parents first (Portage's order); `profile` is relative to
    `profiles/` as in a spec's `profile` key."""
    chain, visiting = [], []

    def visit(directory: str, named_by: str) -> None:
        if directory in chain:
            return
        if directory in visiting:
            raise UserError(f"{named_by}: profile {directory} inherits itself at commit {sha[:7]}")
        visiting.append(directory)
        if not is_tree(bare_repo, sha, directory):
            raise UserError(f"{named_by}: profile {directory} does not exist at commit {sha[:7]} of {bare_repo}; "
                            "fix the profile setting or the pinned commit")
        text = read_blob(bare_repo, sha, f"{directory}/parent") or ""
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            parent = parent_dir(line, directory, repo_name) if line else None
            if parent is not None:
                visit(parent, f"{directory}/parent")
        chain.append(directory)

    visit(posixpath.normpath(posixpath.join("profiles", profile)), f"profile {profile}")
    return tuple(chain)


def md5_cache_eclasses(bare_repo, sha: str, cps) -> dict:
    """`cat/pn` -> eclasses any version of it inherits at commit `sha`, from the metadata cache
    (`metadata/md5-cache/<cat>/<PF>`, line `_eclasses_=<name>\t<md5>\t<name>\t<md5>...`, as in
    gentoo-mirror/gentoo, metadata/md5-cache/sys-fs/bees-0.10, commit 2ffcf0c5998d), for
    packages a stage built but no longer lists."""
    found = {}
    for cp in sorted(set(cps)):
        category = cp.split("/")[0]
        names = set()
        for path in list_paths(bare_repo, sha, f"metadata/md5-cache/{category}"):
            if cp_of_cpv(f"{category}/{path.rsplit('/', 1)[-1]}") != cp:
                continue
            for line in (read_blob(bare_repo, sha, path) or "").splitlines():
                if line.startswith("_eclasses_="):
                    names.update(line[len("_eclasses_="):].split()[0::2])
        found[cp] = tuple(sorted(names))
    return found


class GitTree:
    """The history questions a decision asks, answered from the bare repository and cached."""

    def __init__(self, bare_repo, repo_name: str = "gentoo"):
        self.bare_repo, self.repo_name = bare_repo, repo_name
        self.changed_paths = cache(lambda a, b: changed_paths(bare_repo, a, b))
        self.changed_lines = cache(lambda a, b, path: changed_lines(bare_repo, a, b, path))
        self.profile_chain = cache(lambda sha, profile: profile_chain(bare_repo, sha, profile, repo_name))
