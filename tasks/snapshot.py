"""`snapshot`: the portage tree as a commit of gentoo.git, pinned.

Catalyst's squashfs of a commit (`catalyst -s`) is made only when a stage is built from that
commit (tasks/stages.py): a moved tree that no stage must rebuild for runs no Catalyst at all.
"""
from gentoo_zfs_livecd import pins
from gentoo_zfs_livecd.console import say
from tasks.doit_glue import context
from tasks.doit_glue.actions import doit_action

__all__ = ["task_snapshot"]

SETTINGS = ("snapshot.treeish", "snapshot.repo_url", "snapshot.keyring", "snapshot.fingerprint", "snapshot.keep", "rel_type",
            "catalyst.command")


def resolve(build) -> tuple[str, str]:
    """(sha, date) of the configured tree-ish; `stable` is fetched and its signature checked."""
    from gentoo_zfs_livecd.inputs import gitrepo
    treeish, bare = build.get("snapshot.treeish"), build.paths.bare_repo
    url = build.get("snapshot.repo_url")
    if build.rehearsal:
        from gentoo_zfs_livecd.rehearsal import emulator
        url = str(emulator.portage_upstream(build.paths.build_dir / "upstream" / "gentoo.git"))
    if treeish == "stable":
        sha = gitrepo.update_stable(bare, url)
        if build.rehearsal:
            say("   snapshot: emulated portage tree, commit signature not checked")
        else:
            gitrepo.verify_commit(bare, sha, build.get("snapshot.keyring"), build.get("snapshot.fingerprint"))
    else:
        gitrepo.ensure_commit(bare, url, treeish)
        sha = treeish
    return gitrepo.commit_info(bare, sha)


@doit_action
def update_snapshot(build) -> None:
    from gentoo_zfs_livecd.catalyst import runner
    from gentoo_zfs_livecd.inputs import gitrepo
    # Before any network traffic: no Catalyst (or the wrong one) means no build at all.
    runner.preflight(build.catalyst, build.rehearsal)
    sha, date = resolve(build)
    pin = {"treeish": build.get("snapshot.treeish"), "sha": sha, "date": date.isoformat(),
           "stamp": gitrepo.stamp_from_date(date)}
    changed = pins.write(build.paths.pin("snapshot"), pin)
    say(f"   snapshot: {sha} ({date}){' (new)' if changed else ''}")
    gitrepo.record_pin(build.paths.snapshots, build.get("rel_type"), sha)
    gitrepo.prune_snapshots(build.paths.snapshots, build.get("snapshot.keep"), sha)


def is_current(build, refresh: bool) -> bool:
    """The pin stands: the bare repository has its commit, it pins the configured tree-ish, no
    refresh asked."""
    from gentoo_zfs_livecd.inputs import gitrepo
    pin = build.snapshot_pin
    if pin is None or not gitrepo.has_commit(build.paths.bare_repo, pin["sha"]):
        return False
    if pin["treeish"] != build.get("snapshot.treeish"):
        return False
    return pin["treeish"] != "stable" or not refresh


def task_snapshot():
    """Pin the portage tree (a gentoo.git commit); its squashfs is made when a stage needs it."""
    build = context.current()
    return {
        "actions": [(update_snapshot, [build.declared(SETTINGS)])],
        "targets": [build.paths.pin("snapshot")],
        # Not config_changed: a setting edit must not fetch a moving `stable`; the pin decides.
        "uptodate": [(is_current, [build.declared(SETTINGS), context.refresh()])],
        "task_dep": ["check"],
        "verbosity": 2,
    }
