"""Catalyst's bare ebuild repository (`<storedir>/repos/gentoo.git`) and its snapshots.

Catalyst 4 snapshots a tree-ish of that repository into
`<storedir>/snapshots/<repo_name>-<treeish>.sqfs`; for `stable` it clones or shallow-fetches
the branch itself. Here the same repository is updated the same way, the commit is verified
against the pinned release key, and the build is stamped with the commit's date, so specs
can name the exact 40-hex commit (`snapshot_treeish`) instead of a moving branch.
"""
import os
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from gentoo_zfs_livecd.atomic import write_if_changed
from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.files import beyond_newest
from gentoo_zfs_livecd.inputs.openpgp import verify_by_program

SHA = re.compile(r"[0-9a-f]{40}")


def run_git(args, what, git_dir=None) -> str:
    """stdout of `git [--git-dir <git_dir>] <args>`; UserError naming `what` and git's last error line."""
    # Never wait for credentials on a terminal: a fetch either works unattended or fails.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    prefix = ["--git-dir", str(git_dir)] if git_dir else []
    proc = subprocess.run(["git", *prefix, *map(str, args)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        raise UserError(f"{what}: git {args[0]} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
    return proc.stdout


def git(bare_repo, *args, what=None) -> str:
    return run_git(args, what or bare_repo, git_dir=bare_repo)


def is_repository(bare_repo: Path) -> bool:
    return (bare_repo / "HEAD").is_file() and (bare_repo / "objects").is_dir()


def rev_parse(bare_repo, rev: str) -> str:
    """The commit SHA `rev` names in the bare repository; UserError when it names none."""
    proc = subprocess.run(["git", "--git-dir", str(bare_repo), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"{bare_repo}: {rev} is not a commit of this repository: update it or fetch the pinned commit")
    return proc.stdout.strip()


def clone_bare(bare_repo: Path, url: str, branch: str) -> None:
    """Shallow bare clone of `branch`, made beside `bare_repo` and renamed into place, so an
    interrupted clone never looks like a repository."""
    if bare_repo.exists() and any(bare_repo.iterdir()):
        raise UserError(f"{bare_repo} exists but is not a git repository: remove it or point repos_storedir elsewhere")
    bare_repo.parent.mkdir(parents=True, exist_ok=True)
    tmp = bare_repo.with_name(f".{bare_repo.name}.clone-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    run_git(["clone", "--quiet", "--depth=1", "--bare", f"--branch={branch}", url, tmp], url)
    os.replace(tmp, bare_repo)


def update_stable(bare_repo, url: str, branch: str = "stable") -> str:
    """Bring `branch` of the bare repository up to date with `url`, as Catalyst's `-s stable`
    does (shallow clone when missing, else shallow fetch and move the branch); return its SHA."""
    bare_repo = Path(bare_repo)
    if not is_repository(bare_repo):
        clone_bare(bare_repo, url, branch)
    else:
        git(bare_repo, "fetch", "--quiet", "--depth=1", url, branch, what=url)
        refuse_going_back(bare_repo, url, branch)
        git(bare_repo, "update-ref", f"refs/heads/{branch}", "FETCH_HEAD")
        git(bare_repo, "gc", "--auto", "--quiet")
    return rev_parse(bare_repo, f"refs/heads/{branch}")


def refuse_going_back(bare_repo, url: str, branch: str) -> None:
    """UserError when the fetched `branch` was committed before the one fetched last time: a
    mirror serving an old tree (a rollback). The fetch is shallow, so ancestry cannot be checked
    without deepening it; the committer date can."""
    try:
        old_sha, old_date = commit_info(bare_repo, f"refs/heads/{branch}")
    except UserError:
        return  # nothing fetched before
    new_sha, new_date = commit_info(bare_repo, "FETCH_HEAD")
    if new_date < old_date:
        raise UserError(f"{url}: {branch} is now {new_sha[:12]}, committed {new_date.isoformat()}, before "
                        f"{old_sha[:12]} ({old_date.isoformat()}) fetched earlier; refusing to go back in "
                        f"time. To build the older tree on purpose, pin it: snapshot.treeish: {new_sha}")


def verify_commit(bare_repo, sha: str, keyring, fingerprint: str) -> None:
    """UserError unless commit `sha` carries a good signature by the pinned key (or its subkey)."""
    source = f"commit {sha} of {bare_repo}"
    rev_parse(bare_repo, sha)
    code = verify_by_program(
        ["git", "-c", "gpg.format=openpgp", "-c", "gpg.program=gpg", "-c", "gpg.openpgp.program=gpg",
         "--git-dir", str(bare_repo), "verify-commit", "--raw", sha],
        keyring, fingerprint, source)
    if code != 0:
        raise UserError(f"{source}: git verify-commit failed (exit {code})")


def commit_info(bare_repo, rev: str) -> tuple:
    """(full SHA, committer date as an aware UTC datetime) of `rev`."""
    sha = rev_parse(bare_repo, rev)
    timestamp = int(git(bare_repo, "show", "-s", "--format=%ct", sha).strip())
    return sha, datetime.fromtimestamp(timestamp, tz=timezone.utc)


def stamp_from_date(date: datetime) -> str:
    """`YYYYMMDDTHHMMSSZ` of `date` in UTC, the form of Gentoo's build stamps.

    The time is converted to UTC first, so the `Z` is true whatever the committer's zone.
    """
    if date.tzinfo is None:
        raise ValueError("stamp_from_date needs a timezone-aware datetime")
    return date.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def has_commit(bare_repo, sha: str) -> bool:
    proc = subprocess.run(["git", "--git-dir", str(bare_repo), "cat-file", "-e", f"{sha}^{{commit}}"],
                          capture_output=True)
    return proc.returncode == 0


def ensure_commit(bare_repo, url: str, sha: str) -> None:
    """Make commit `sha` present in the bare repository, fetching only it (depth 1) if missing.

    The fetched commit is not put on a branch: if `git gc` drops it after it becomes old and
    unreachable, the next call fetches it again.
    """
    bare_repo = Path(bare_repo)
    if not SHA.fullmatch(sha or ""):
        raise UserError(f"pinned commit {sha!r} is not a full 40-hex SHA: pin the commit that update_stable returned")
    if not is_repository(bare_repo):
        bare_repo.parent.mkdir(parents=True, exist_ok=True)
        run_git(["init", "--quiet", "--bare", "--initial-branch=stable", bare_repo], bare_repo)
    elif has_commit(bare_repo, sha):
        return
    git(bare_repo, "fetch", "--quiet", "--depth=1", url, sha, what=f"{url} (commit {sha})")
    if not has_commit(bare_repo, sha):
        raise UserError(f"{url}: fetching {sha} did not bring that commit into {bare_repo}")


PINNED_BY = ".pinned-by-"


def record_pin(snapshots_dir, rel_type: str, sha: str) -> None:
    """Note in the shared snapshots folder that the build of `rel_type` pins `sha`: configs that
    share a storedir (one per rel_type) never prune a snapshot another one pins."""
    write_if_changed(Path(snapshots_dir) / f"{PINNED_BY}{rel_type}", f"{sha}\n")


def pinned_elsewhere(snapshots_dir) -> set:
    """Every commit a build sharing this snapshots folder has pinned (record_pin)."""
    return {marker.read_text().strip() for marker in Path(snapshots_dir).glob(f"{PINNED_BY}*")}


def prune_snapshots(snapshots_dir, keep: int, pinned_sha, repo_name: str = "gentoo") -> list:
    """Remove `<repo_name>-<sha>.sqfs` snapshots beyond the `keep` newest (by mtime), never the
    one of `pinned_sha` nor one another build pins; return the removed paths. Other files are
    left alone."""
    snapshots_dir = Path(snapshots_dir)
    if not snapshots_dir.is_dir():
        return []
    pattern = re.compile(re.escape(repo_name) + r"-([0-9a-f]{40})\.sqfs")
    snapshots = [path for path in snapshots_dir.iterdir() if pattern.fullmatch(path.name) and path.is_file()]
    pinned = {pinned_sha} | pinned_elsewhere(snapshots_dir)
    removed = beyond_newest(snapshots, keep, newest_key=lambda path: path.stat().st_mtime,
                            protected={snapshots_dir / f"{repo_name}-{sha}.sqfs" for sha in pinned})
    for path in removed:
        path.unlink()
    return removed
