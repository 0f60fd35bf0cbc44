"""Catalyst stage runs over a replay of 30 nights: `snapshot.rebuild: relevant` against `always`.

The nights run through the project's own decision (gentoo_zfs_livecd.rebuild.decide) on a
synthetic tree with the parameters below; the same random draw (fixed seed) feeds every
policy. Printed: stage runs and Catalyst hours per policy, and the ratio to `always`.
Usage, from the checkout: python -m bench.rebuild_replay [--nights 30] [--seed 1]
"""
import argparse
import hashlib
import math
import random
from datetime import datetime, timedelta, timezone

from gentoo_zfs_livecd.rebuild.decide import StageState, decide
from gentoo_zfs_livecd.rebuild.holdings import Holdings

# --- the synthetic tree --------------------------------------------------------------------
TREE_PACKAGES = 19000            # packages in the tree (gentoo.git holds about 19,000)
TOUCHED_PER_NIGHT = 40           # packages changed per night on `stable` (mean, Poisson)
HELD_SHARE = 0.03                # share of the touched packages that the ISO stage holds
STAGE_PACKAGES = {"stage1": 120, "stage3": 230, "installcd-stage1": 420, "iso": 450}  # each holds the previous
TREE_ECLASSES = 250
HELD_ECLASSES = 60               # eclasses the stages' packages inherit
ECLASS_CHANGES_PER_WEEK = 5      # changed eclasses per week (mean, Poisson)
PROFILE_CHANGES_PER_WEEK = 3     # changed profile files per week (mean, Poisson)
PROFILE_IN_CHAIN_SHARE = 0.3     # share of those inside the stages' profile or its parents
SEED_MOVE_EVERY = 7              # nights between two moves of the seed stage3 (rebuilds stage1, so all)
# Catalyst hours per stage run, for the hours figure (a 16-thread amd64 builder, roughly).
HOURS = {"stage1": 1.5, "stage3": 2.0, "installcd-stage1": 1.0, "iso": 0.75}

PROFILE = "default/linux/amd64/23.0"
CHAIN = list(STAGE_PACKAGES)


def poisson(rng, mean) -> int:
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def commit(night: int) -> str:
    return hashlib.sha1(f"night {night}".encode()).hexdigest()


class SyntheticTree:
    """Answers the decision's questions (changed paths, profile chain) for the replayed nights."""

    def __init__(self, nights: int, rng):
        self.packages = [f"cat-{i % 160}/pkg{i}" for i in range(TREE_PACKAGES)]
        held = rng.sample(self.packages, STAGE_PACKAGES["iso"])
        self.held = {stage: held[:count] for stage, count in STAGE_PACKAGES.items()}
        unheld = sorted(set(self.packages) - set(held))
        self.eclasses = [f"eclass{i}" for i in range(TREE_ECLASSES)]
        self.chain = ("profiles/base", "profiles/default/linux", f"profiles/{PROFILE}")
        self.index = {commit(n): n for n in range(nights + 1)}
        self.nights = {}
        for night in range(1, nights + 1):
            paths = set()
            for _ in range(poisson(rng, TOUCHED_PER_NIGHT)):
                cp = rng.choice(held) if rng.random() < HELD_SHARE else rng.choice(unheld)
                paths.add(f"{cp}/{cp.split('/')[1]}-{night}.ebuild")
            for _ in range(poisson(rng, ECLASS_CHANGES_PER_WEEK / 7)):
                paths.add(f"eclass/{rng.choice(self.eclasses)}.eclass")
            for _ in range(poisson(rng, PROFILE_CHANGES_PER_WEEK / 7)):
                where = rng.choice(self.chain) if rng.random() < PROFILE_IN_CHAIN_SHARE else "profiles/arch/arm64"
                paths.add(f"{where}/package.use.mask")
            paths.add("metadata/timestamp.chk")
            self.nights[night] = paths

    def holdings(self, stage: str) -> Holdings:
        # The stage's packages inherit the first HELD_ECLASSES eclasses between them.
        packages = {f"{cp}-1": (self.eclasses[i % HELD_ECLASSES],) for i, cp in enumerate(self.held[stage])}
        return Holdings(PROFILE, packages)

    def changed_paths(self, a: str, b: str) -> tuple:
        paths = set()
        for night in range(self.index[a] + 1, self.index[b] + 1):
            paths |= self.nights[night]
        return tuple(sorted(paths))

    def changed_lines(self, a, b, path) -> tuple:
        return ()

    def profile_chain(self, sha, profile) -> tuple:
        return self.chain


def replay(tree: SyntheticTree, nights: int, rebuild: str, full_rebuild_days) -> dict:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    built = {stage: commit(0) for stage in CHAIN}
    last_full = start
    runs = {stage: 0 for stage in CHAIN}
    for night in range(1, nights + 1):
        now = start + timedelta(days=night)
        seed_moved = night % SEED_MOVE_EVERY == 0
        stages = [StageState(stage, built[stage], tree.holdings(stage),
                             "seed changed" if seed_moved and stage == CHAIN[0] else None) for stage in CHAIN]
        decisions = decide(stages, commit(night), tree, rebuild=rebuild, full_rebuild_days=full_rebuild_days,
                           last_full_build=last_full, now=now)
        for decision in decisions:
            built[decision.stage] = decision.snapshot
            runs[decision.stage] += decision.rebuild
        if decisions[0].rebuild:
            last_full = now
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    tree = SyntheticTree(args.nights, random.Random(args.seed))
    print(f"{args.nights} nights; {TOUCHED_PER_NIGHT} packages touched per night, {HELD_SHARE:.0%} of them held; "
          f"{ECLASS_CHANGES_PER_WEEK} eclass and {PROFILE_CHANGES_PER_WEEK} profile changes per week "
          f"({HELD_ECLASSES}/{TREE_ECLASSES} eclasses inherited, {PROFILE_IN_CHAIN_SHARE:.0%} of profile changes "
          f"in the stages' profile); seed moves every {SEED_MOVE_EVERY} nights")
    always = replay(tree, args.nights, "always", 7)
    baseline_runs, baseline_hours = sum(always.values()), sum(HOURS[s] * n for s, n in always.items())
    for label, rebuild, days in (("always", "always", 7), ("relevant, full_rebuild_days: 7", "relevant", 7),
                                 ("relevant, full_rebuild_days: null", "relevant", None)):
        runs = replay(tree, args.nights, rebuild, days)
        total, hours = sum(runs.values()), sum(HOURS[s] * n for s, n in runs.items())
        per_stage = ", ".join(f"{s} {n}" for s, n in runs.items())
        print(f"{label:36} {total:4} stage runs ({per_stage}); {hours:6.1f} Catalyst hours; "
              f"ratio {total / baseline_runs:.2f} runs, {hours / baseline_hours:.2f} hours")


if __name__ == "__main__":
    main()
