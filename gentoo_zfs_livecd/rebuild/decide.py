"""Keep or rebuild: one decision per stage, in chain order, when the snapshot pin moves.

A stage rebuilds when the stage it starts from was rebuilt, when its own inputs other than the
tree changed, or when the tree's change between the commit it was built from and the new pin
touches something it holds:
- `<category>/<package>/` of a package it holds (`metadata.xml` aside); a
  `metadata/md5-cache/<category>/<PF>` entry counts as its package;
- `eclass/<name>.eclass` of an eclass one of its packages inherited;
- any file of its profile: the profile's directory and every profile it inherits;
- a changed line naming one of its packages in a `profiles/` file outside its profile that
  applies to every profile (`profiles/package.mask` and the other `package.*`, and the package
  moves in `profiles/updates/`);
- a repository-level setting (REPOSITORY_SETTINGS).
Anything else (news, GLSAs, timestamps, licenses, descriptions...) never rebuilds a stage.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .atoms import cp_of_atom, cp_of_cpv, matches
from .holdings import Holdings

REPOSITORY_SETTINGS = frozenset({"metadata/layout.conf", "profiles/eapi", "profiles/repo_name", "profiles/arch.list"})
IGNORED_PREFIXES = ("metadata/timestamp", "metadata/news/", "metadata/glsa/", "metadata/dtd/",
                    "metadata/xml-schema/", "metadata/pkg_desc_index")
# Top-level directories of an ebuild repository that are not categories; `profiles/package.mask`
# applies "regardless of profile"; `profiles/updates/` holds `move`/`slotmove` lines
# (gentoo/pms, tree-layout.tex, commit 0076428cef89).
NOT_CATEGORIES = frozenset({"eclass", "licenses", "metadata", "profiles"})
REASONS_SHOWN = 3
REBUILD_POLICIES = ("relevant", "always")


@dataclass(frozen=True)
class Touch:
    """What one changed path is, for a decision: kind and the name it concerns."""
    kind: str  # package, eclass, profile, repository, ignored, other
    name: str


def classify(path: str) -> Touch:
    parts = path.split("/")
    if path in REPOSITORY_SETTINGS:
        return Touch("repository", path)
    if path.startswith(IGNORED_PREFIXES):
        return Touch("ignored", path)
    if parts[:2] == ["metadata", "md5-cache"] and len(parts) == 4:
        cp = cp_of_cpv(f"{parts[2]}/{parts[3]}")
        return Touch("package", cp) if cp else Touch("other", path)
    if parts[0] == "eclass":
        if len(parts) == 2 and parts[1].endswith(".eclass"):
            return Touch("eclass", parts[1][:-len(".eclass")])
        return Touch("other", path)
    if parts[0] == "profiles":
        return Touch("profile", path)
    if len(parts) >= 3 and parts[0] not in NOT_CATEGORIES and not parts[0].startswith("."):
        if len(parts) == 3 and parts[2] == "metadata.xml":
            return Touch("ignored", path)
        return Touch("package", f"{parts[0]}/{parts[1]}")
    return Touch("other", path)


def in_profile(path: str, chain) -> bool:
    """A file of one of the profile directories: directly inside it, or inside one of its
    `package.*`/`use.*` directories (Portage's directory form of those files). Subdirectories
    otherwise are other profiles."""
    for directory in chain:
        if not path.startswith(directory + "/"):
            continue
        rest = path[len(directory) + 1:]
        if "/" not in rest or rest.split("/", 1)[0].startswith(("package.", "use.")):
            return True
    return False


def line_applies_everywhere(path: str) -> bool:
    """A `profiles/` file outside any profile directory that still applies to every profile."""
    parts = path.split("/")
    return (len(parts) == 2 and parts[1].startswith("package.")) or parts[1:2] == ["updates"]


def named_packages(line: str, cps) -> list:
    """Held packages that one line of a package list or of `profiles/updates/` names."""
    found = set()
    for token in line.split("#", 1)[0].split():
        cp = cp_of_atom(token.lstrip("-"))
        if cp:
            found.update(matches(cp, cps))
    return sorted(found)


@dataclass(frozen=True)
class StageState:
    """A stage before the decision: what its current artifact was built from and holds."""
    name: str
    built_from: str | None  # commit of its artifact; None: no artifact
    holdings: Holdings | None
    inputs_changed: str | None = None  # why its own inputs other than the tree changed


@dataclass(frozen=True)
class Decision:
    stage: str
    rebuild: bool
    reason: str
    snapshot: str  # the commit the stage is built from after this run

    @property
    def line(self) -> str:
        return f"{self.stage}: {'rebuild' if self.rebuild else 'kept'} ({self.reason})"

    def to_json(self) -> dict:
        return {"stage": self.stage, "rebuild": self.rebuild, "reason": self.reason, "snapshot": self.snapshot}


def _summary(items: list) -> str:
    shown = ", ".join(items[:REASONS_SHOWN])
    return shown + (f" and {len(items) - REASONS_SHOWN} more" if len(items) > REASONS_SHOWN else "")


def tree_triggers(tree, a: str, b: str, holdings: Holdings) -> list:
    """Why the change `a`..`b` reaches a stage holding `holdings` ([] = it does not)."""
    cps, eclasses = holdings.cps, holdings.eclasses
    chain = tree.profile_chain(a, holdings.profile)
    packages, eclass_hits, profile_files, lines, settings = set(), set(), [], [], []
    for path in tree.changed_paths(a, b):
        touch = classify(path)
        if touch.kind == "package" and touch.name in cps:
            packages.add(touch.name)
        elif touch.kind == "eclass" and touch.name in eclasses:
            eclass_hits.add(touch.name)
        elif touch.kind == "repository":
            settings.append(f"{path} changed")
        elif touch.kind == "profile" and in_profile(path, chain):
            profile_files.append(path)
        elif touch.kind == "profile" and line_applies_everywhere(path):
            named = sorted({cp for line in tree.changed_lines(a, b, path) for cp in named_packages(line, cps)})
            if named:
                lines.append(f"{path} names {_summary(named)}")
    triggers = settings
    if packages:
        triggers.append(f"{_summary(sorted(packages))} changed")
    if eclass_hits:
        triggers.append(f"eclass {_summary(sorted(eclass_hits))} changed")
    if profile_files:
        triggers.append(f"profile file {_summary(profile_files)} changed")
    return triggers + lines


def _kept_reason(stage: StageState, b: str) -> str:
    a = stage.built_from
    if a == b:
        return f"built from {a[:7]}; tree unchanged"
    holdings = stage.holdings
    return (f"built from {a[:7]}; none of its {len(holdings.cps)} packages, {len(holdings.eclasses)} eclasses "
            f"or its profile changed in {a[:7]}..{b[:7]}")


def full_rebuild_due(last_full_build: datetime | None, days: int | None, now: datetime) -> bool:
    if days is None:
        return False
    return last_full_build is None or now - last_full_build >= timedelta(days=days)


def decide_stage(stage: StageState, upstream: Decision | None, b: str, tree, rebuild: str,
                 full_rebuild_days: int | None, last_full_build: datetime | None, now: datetime) -> Decision:
    def rebuilt(reason: str) -> Decision:
        return Decision(stage.name, True, reason, b)

    a = stage.built_from
    if a is None:
        return rebuilt("not built yet")
    if stage.inputs_changed:
        return rebuilt(stage.inputs_changed)
    if upstream is not None and upstream.rebuild:
        return rebuilt(f"{upstream.stage} rebuilt")
    if a != b:
        if rebuild == "always":
            return rebuilt(f"tree moved {a[:7]}..{b[:7]}; snapshot.rebuild: always")
        if full_rebuild_due(last_full_build, full_rebuild_days, now):
            since = "never" if last_full_build is None else f"{(now - last_full_build).days} days ago"
            return rebuilt(f"last full build {since}; snapshot.full_rebuild_days: {full_rebuild_days}")
        if stage.holdings is None:
            return rebuilt("what it holds is not recorded")
        triggers = tree_triggers(tree, a, b, stage.holdings)
        if triggers:
            return rebuilt("; ".join(triggers))
    return Decision(stage.name, False, _kept_reason(stage, b), a)


def decide(stages, b: str, tree, rebuild: str = "relevant", full_rebuild_days: int | None = 7,
           last_full_build: datetime | None = None, now: datetime | None = None) -> list:
    """One Decision per stage of `stages` (StageState, in chain order) for the tree at commit `b`.

    `tree` answers `changed_paths(a, b)`, `changed_lines(a, b, path)` and
    `profile_chain(sha, profile)` (GitTree). `last_full_build`: when every stage was last
    rebuilt together (aware datetime; None: never).
    """
    if rebuild not in REBUILD_POLICIES:
        raise ValueError(f"rebuild policy {rebuild!r} is not one of {REBUILD_POLICIES}")
    now = now or datetime.now(timezone.utc)
    decisions, upstream = [], None
    for stage in stages:
        upstream = decide_stage(stage, upstream, b, tree, rebuild, full_rebuild_days, last_full_build, now)
        decisions.append(upstream)
    return decisions
