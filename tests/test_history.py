"""Run history: append, load (skipping damage), medians and remaining-time estimates."""
import json

import pytest

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.nightly import history
from gentoo_zfs_livecd.nightly.history import RunRecord, TaskRun


def run(day, stage1=None, stage1_status="ran", outcome="succeeded"):
    tasks = [TaskRun("check", "ran", 2.5)]
    if stage1 is not None:
        tasks.append(TaskRun("stage1", stage1_status, stage1))
    iso = f"install-amd64-zfs-202608{day:02d}T000000Z.iso"
    return RunRecord(start=f"2026-08-{day:02d}T02:00:00+00:00", end=f"2026-08-{day:02d}T05:00:00+00:00",
                     outcome=outcome, tasks=tasks,
                     failed_task="stage1" if stage1_status == "failed" else None,
                     iso_name=iso, artifacts={iso: 1_000_000_000 + day},
                     versions={"kernel": "6.12.41-gentoo-dist", "zfs": "2.3.4"},
                     log_path=f"build/config/logs/{day}/nightly.log")


def test_append_then_load_round_trips(tmp_path):
    path = tmp_path / "build" / "config" / "history.jsonl"
    records = [run(1, 100.0), run(2, 200.0, "failed", "failed"), run(3)]

    for record in records:
        history.append(path, record)

    assert history.load(path) == records
    lines = path.read_bytes().split(b"\n")
    assert len(lines) == 4 and lines[-1] == b""
    assert json.loads(lines[0])["tasks"][1] == {"name": "stage1", "status": "ran", "seconds": 100.0}
    assert history.load(path)[0].iso_size == 1_000_000_001


def test_load_skips_corrupt_lines_and_append_survives_a_torn_line(tmp_path):
    path = tmp_path / "history.jsonl"
    history.append(path, run(1, 100.0))
    with open(path, "ab") as f:
        f.write(b"not json at all\n")
        f.write(b'["a list", "not a record"]\n')
        f.write(b'{"start": "2026-08-02T02:00:00+00:00", "outcome": "failed"}\n')  # no "end"
        f.write(b'{"start": "2026-08-03T02:00:00+00:00", "end": "2026-08-03T0')  # crash mid-write
    history.append(path, run(4, 400.0))

    assert [r.start for r in history.load(path)] == ["2026-08-01T02:00:00+00:00",
                                                     "2026-08-04T02:00:00+00:00"]


def test_load_ignores_unknown_keys(tmp_path):
    path = tmp_path / "history.jsonl"
    line = json.loads(history.to_line(run(1, 10.0)))
    line["added_later"] = {"x": 1}
    line["tasks"][0]["added_later"] = True
    path.write_text(json.dumps(line) + "\n")

    assert history.load(path) == [run(1, 10.0)]


def test_missing_history_is_empty(tmp_path):
    assert history.load(tmp_path / "nothing.jsonl") == []


def test_unwritable_history_is_a_user_error(tmp_path):
    blocker = tmp_path / "build"
    blocker.write_text("a file where a folder should be")

    with pytest.raises(UserError, match=r"history file .*build/history.jsonl: cannot append"):
        history.append(blocker / "history.jsonl", run(1))


def test_median_uses_only_runs_where_the_task_ran_and_succeeded():
    records = [run(1, 100.0), run(2, 300.0), run(3, 9999.0, "failed", "failed"),
               run(4, 0.1, "skipped"), run(5), run(6, 200.0)]

    assert history.median_duration(records, "stage1") == 200.0
    assert history.median_duration(records, "check") == 2.5
    assert history.median_duration(records, "boottest") is None
    assert history.median_duration([], "stage1") is None


def test_median_looks_at_recent_runs_only():
    records = [run(day, 1000.0) for day in range(1, 11)] + [run(day, 10.0) for day in range(11, 14)]

    assert history.median_duration(records, "stage1", window=3) == 10.0
    assert history.median_duration(records, "stage1", window=7) == 1000.0
