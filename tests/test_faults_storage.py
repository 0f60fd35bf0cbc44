"""The storedir does not only grow, and a stage the disk cannot hold is refused before Catalyst."""
import json
import os
import subprocess
import sys

from tests.support.buildgraph import Project


def test_a_stage_the_disk_cannot_hold_is_refused_in_one_line_before_catalyst(tmp_path):
    project = Project(tmp_path)
    project.build()
    attempt = project.build_dir / "attempts" / "stage3.json"
    record = json.loads(attempt.read_text())
    for stamp in record["produced"].values():
        stamp["size"] = 1 << 50  # as if the last stage3 had made a petabyte
    attempt.write_text(json.dumps(record))
    (project.root / "specs" / "stage3.spec.j2").open("a").write("\nportage_prefix: releng\n")
    refused = project.doit()
    assert refused.returncode != 0
    errors = [line for line in refused.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "GiB free" in errors[0] and "stage3" in errors[0], refused.stdout
    assert "Traceback" not in refused.stdout + refused.stderr
    assert project.calls() == []


def test_a_good_night_prunes_catalyst_caches_the_build_no_longer_uses(tmp_path):
    project = Project(tmp_path, nightly={"keep_caches": 1})
    mine, theirs = project.store / "packages" / "23.0-zfs", project.store / "packages" / "other-rel"
    old = [mine / f"stage3-amd64-2025010{day}T000000Z" for day in (1, 2, 3)]
    for number, folder in enumerate(old + [mine / "stage3-amd64", theirs / "stage3-amd64-20250101T000000Z"]):
        (folder / "app-misc").mkdir(parents=True)
        os.utime(folder, (1_700_000_000 + number, 1_700_000_000 + number))
    kerncache_old = project.store / "kerncache" / "23.0-zfs" / "livecd-stage2-amd64-20250101T000000Z"
    kerncache_old.mkdir(parents=True)
    os.utime(kerncache_old, (1_600_000_000, 1_600_000_000))
    night = subprocess.run([sys.executable, "-m", "doit", "nightly"], cwd=project.root, env=project.environment(),
                           capture_output=True, text=True, timeout=300, check=False)
    assert night.returncode == 0, night.stdout + night.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["stage3-amd64", "stage3-amd64-20250103T000000Z"]
    assert (theirs / "stage3-amd64-20250101T000000Z").is_dir()  # another rel_type's: not ours to touch
    # The only unused kerncache folder is the newest unused one there: kept.
    assert kerncache_old.is_dir()
