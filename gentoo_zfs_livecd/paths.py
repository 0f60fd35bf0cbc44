"""Every path the build reads or writes, named in one place.

Catalyst's own layout (catalyst-4.md §4): `SUB = <rel_type>/<target>-<subarch>-<version_stamp>`,
tarballs at `<storedir>/builds/SUB.<ext>` with `.CONTENTS.gz`, the ISO at
`<storedir>/builds/<rel_type>/<livecd/iso>`, snapshots at `<storedir>/snapshots/gentoo-<sha>.sqfs`.
The project's own files live under the build folder `build/<config stem>/`.
"""
import copy
from pathlib import Path

# Task name -> Catalyst target and spec template.
STAGE_TARGETS = {
    "stage1": "stage1",
    "stage2": "stage2",
    "stage3": "stage3",
    "installcd-stage1": "livecd-stage1",
    "iso": "livecd-stage2",
}
TEMPLATES = {
    "stage1": "stage1.spec.j2",
    "stage2": "stage2.spec.j2",
    "stage3": "stage3.spec.j2",
    "installcd-stage1": "installcd-stage1.spec.j2",
    "iso": "installcd-stage2-minimal.spec.j2",
}


class Paths:
    """Names every artifact of one build from storedir, rel_type, subarch and version_stamp."""

    def __init__(self, build_dir: Path, storedir: Path, rel_type: str, subarch: str, version_stamp: str,
                 tarball_ext: str, iso_name: str, flavour: str, publish_dir: Path, repo_name: str = "gentoo",
                 stage_stamps: dict | None = None):
        self.build_dir, self.storedir, self.publish_dir = build_dir, storedir, publish_dir
        self.rel_type, self.subarch, self.version_stamp = rel_type, subarch, version_stamp
        self.tarball_ext, self.iso_name, self.flavour, self.repo_name = tarball_ext, iso_name, flavour, repo_name
        # A kept stage keeps the stamp it was built with (its stage pin); the others use version_stamp.
        self.stage_stamps = dict(stage_stamps or {})

    def with_stage_stamps(self, stage_stamps: dict, iso_name: str) -> "Paths":
        """These paths with the stages' artifacts named by `stage_stamps` (new stage pins)."""
        other = copy.copy(self)
        other.stage_stamps, other.iso_name = dict(stage_stamps), iso_name
        return other

    def stamp(self, stage: str) -> str:
        return self.stage_stamps.get(stage, self.version_stamp)

    # Catalyst's storedir
    @property
    def builds(self) -> Path:
        return self.storedir / "builds" / self.rel_type

    def unversioned(self, stage: str) -> str:
        """`<target>-<subarch>`: how Catalyst names a stage's work, cache and artifact folders
        before the version stamp."""
        return f"{STAGE_TARGETS[stage]}-{self.subarch}"

    def subpath(self, stage: str) -> str:
        """Catalyst's `source_subpath` form of a stage's output: `<rel_type>/<target>-<subarch>-<stamp>`."""
        return f"{self.rel_type}/{self.unversioned(stage)}-{self.stamp(stage)}"

    def tarball(self, stage: str) -> Path:
        return self.storedir / "builds" / f"{self.subpath(stage)}.{self.tarball_ext}"

    @staticmethod
    def contents(artifact: Path) -> Path:
        return artifact.with_name(artifact.name + ".CONTENTS.gz")

    @property
    def iso(self) -> Path:
        return self.builds / self.iso_name

    def sidecar(self, suffix: str) -> Path:
        """A file beside the ISO: `.DIGESTS`, `.sha256`, `.asc`, `.CONTENTS.gz`."""
        return self.iso.with_name(self.iso.name + suffix)

    def targets(self, stage: str) -> list:
        """Exactly the files Catalyst writes for a stage (no digests: catalyst.conf sets none)."""
        tarball = self.tarball(stage)
        files = [tarball, self.contents(tarball)]
        if stage == "iso":
            files += [self.iso, self.contents(self.iso)]
        return files

    @property
    def seed_subpath(self) -> str:
        """The fixed name stage1's `source_subpath` uses; Catalyst finds `<name>.<ext>` by glob."""
        return f"{self.rel_type}/stage3-{self.subarch}-{self.flavour}-seed"

    def seed(self, extension: str) -> Path:
        return self.storedir / "builds" / f"{self.seed_subpath}{extension}"

    @property
    def old_seeds(self) -> Path:
        # Outside builds/<rel_type>/, so Catalyst's seed glob never sees two candidates.
        return self.storedir / "seeds" / self.rel_type

    @property
    def bare_repo(self) -> Path:
        return self.storedir / "repos" / f"{self.repo_name}.git"

    @property
    def snapshots(self) -> Path:
        return self.storedir / "snapshots"

    def snapshot(self, sha: str) -> Path:
        return self.snapshots / f"{self.repo_name}-{sha}.sqfs"

    # the project's build folder
    @property
    def lock(self) -> Path:
        return self.build_dir / "lock"

    def spec(self, stage: str) -> Path:
        return self.build_dir / "specs" / f"{stage}.spec"

    @property
    def catalyst_conf(self) -> Path:
        return self.build_dir / "catalyst.conf"

    @property
    def catalystrc(self) -> Path:
        return self.build_dir / "catalystrc"

    def pin(self, name: str) -> Path:
        return self.pin_in(self.build_dir, name)

    @staticmethod
    def pin_in(build_dir: Path, name: str) -> Path:
        """A pin's file, before the rest of the paths is known (the stamp may come from it)."""
        return build_dir / "pins" / f"{name}.json"

    def stage_pin(self, stage: str) -> Path:
        """What a stage is built from: snapshot commit, stamp, own-inputs signature."""
        return self.pin(f"stage-{stage}")

    @property
    def decisions(self) -> Path:
        """The last keep-or-rebuild decisions, one line per stage, for the run history."""
        return self.build_dir / "decisions.json"

    def holdings(self, stage: str) -> Path:
        """What the stage's artifact holds and was built from, written after each build."""
        return self.build_dir / "holdings" / f"{stage}.json"

    def confdir(self, name: str) -> Path:
        """Rendered portage confdir (`stages` or `isos`): the source files plus generated ones."""
        return self.build_dir / "portage" / name

    def attempt(self, stage: str) -> Path:
        return self.build_dir / "attempts" / f"{stage}.json"

    @property
    def stamps(self) -> Path:
        return self.stamps_in(self.build_dir)

    @staticmethod
    def stamps_in(build_dir: Path) -> Path:
        """The stamp record, which doit's file checker needs before a build is loaded."""
        return build_dir / "stamps.json"

    @property
    def logs(self) -> Path:
        return self.build_dir / "logs"

    @property
    def history(self) -> Path:
        return self.build_dir / "history.jsonl"

    @property
    def build_info(self) -> Path:
        return self.build_dir / "build-info.json"

    @property
    def boot_console(self) -> Path:
        return self.build_dir / "boottest" / "console.log"

    @property
    def boottest_dir(self) -> Path:
        return self.build_dir / "boottest"

    @property
    def report_dir(self) -> Path:
        return self.build_dir / "report"

    @property
    def seed_work(self) -> Path:
        return self.build_dir / "downloads"
