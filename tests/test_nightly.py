"""The nightly run end to end: lock, skip when unchanged, notify on failure, keep the good release."""
import json
import os
import sqlite3
import subprocess
import sys

import pytest
from aiosmtpd.controller import Controller

from tests.support.buildgraph import Project
from tests.support.network import free_port


def nightly(project, fault=None):
    return subprocess.Popen([sys.executable, "-m", "doit", "nightly"], cwd=project.root, env=project.environment(fault),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process):
    out, _ = process.communicate(timeout=300)
    return process.returncode, out


@pytest.fixture
def project(tmp_path):
    built = Project(tmp_path)
    code, out = finish(nightly(built))
    assert code == 0, out
    assert "published: " in out
    built.calls()
    return built


def current_release(project):
    publish = project.root.parent / "publish"
    return os.readlink(publish / "current"), (publish / "latest-iso.txt").read_text()


def test_two_nightlies_at_once_one_builds_the_other_exits_zero(project):
    (project.root / "specs" / "stage3.spec.j2").open("a").write("\nportage_prefix: releng\n")
    first = nightly(project, fault="stage3:slow")
    while not (project.record.exists() and "stage3" in project.record.read_text()):
        assert first.poll() is None
    second_code, second_out = finish(nightly(project))
    first_code, first_out = finish(first)
    assert second_code == 0
    assert f"another build is running (pid {first.pid}, since " in second_out
    assert first_code == 0, first_out
    assert project.calls() == ["stage3", "installcd-stage1", "iso"]
    with sqlite3.connect(project.build_dir / "doit.sqlite") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    assert project.build() == []


def test_an_unchanged_night_runs_no_catalyst_and_publishes_nothing(project):
    before = sorted(p.name for p in (project.root.parent / "publish").iterdir())
    code, out = finish(nightly(project))
    assert code == 0, out
    assert out.strip().splitlines()[-1].startswith("up to date: install-amd64-zfs-")
    assert project.calls() == []
    assert sorted(p.name for p in (project.root.parent / "publish").iterdir()) == before
    history = [json.loads(line) for line in (project.build_dir / "history.jsonl").read_text().splitlines()]
    assert [run["outcome"] for run in history] == ["succeeded", "succeeded"]
    assert {task["name"]: task["status"] for task in history[-1]["tasks"]}["iso"] == "skipped"


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content.decode(errors="replace"))
        return "250 OK"


def test_a_failing_stage_notifies_by_mail_and_webhook_and_keeps_the_release(project, httpserver):
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
        project.configure(notify={"smtp": {"host": "127.0.0.1", "port": smtp.port,
                                           "from": "builder@localhost", "to": ["releng@localhost"]},
                                  "webhook": {"url": httpserver.url_for("/hook")}})
        before = current_release(project)
        (project.root / "specs" / "stage3.spec.j2").open("a").write("\nportage_prefix: releng\n")
        code, out = finish(nightly(project, fault="stage3:exit2"))
    finally:
        smtp.stop()
    assert code != 0
    assert "nightly failed in stage3" in out
    assert current_release(project) == before
    assert len(inbox.messages) == 1
    assert "build failed: stage3" in inbox.messages[0]
    assert "Exception running action sequence build_packages" in inbox.messages[0]
    (request, _), = httpserver.log
    payload = request.get_json()
    assert payload["outcome"] == "failed" and payload["failed_task"] == "stage3"
    assert "Exception running action sequence build_packages" in payload["log_tail"]
    assert payload["log_path"].endswith("stage3.log")
    # The history and the report name no ISO for this night: the one on disk is the last good night's.
    last = json.loads((project.build_dir / "history.jsonl").read_text().splitlines()[-1])
    assert (last["outcome"], last["iso_name"], last["artifacts"], last["versions"]) == ("failed", None, {}, {})
    project.doit("report", check=True)
    page = (project.build_dir / "report" / "index.html").read_text()
    assert "<tr><th>ISO</th><td>–</td></tr>" in page
    assert "Rehearsal" not in page


def test_sigterm_stops_the_night_cleanly_and_keeps_what_finished(project):
    import signal
    import time
    (project.root / "specs" / "stage2.spec.j2").open("a").write("\nportage_prefix: releng\n")
    running = nightly(project, fault="stage3:hang")
    while not (project.record.exists() and "stage3" in project.record.read_text()):
        assert running.poll() is None
        time.sleep(0.1)
    running.send_signal(signal.SIGTERM)
    code, out = finish(running)
    assert code != 0
    assert project.stop_hanging_catalysts() == []  # the night stopped its Catalyst too
    assert project.calls() == ["stage2", "stage3"]
    # stage2 finished before the signal and is kept; stage3 and what follows are rebuilt.
    assert project.build() == ["stage3", "installcd-stage1", "iso"]


def test_upload_and_report(project, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    project.configure(publish={"upload": f"{mirror}/"})
    (project.root / "specs" / "installcd-stage2-minimal.spec.j2").open("a").write("\nlivecd/readme: \n")
    (project.root / "overlay" / "cd_overlay" / "NOTES.txt").write_text("new\n")
    code, out = finish(nightly(project))
    assert code == 0, out
    release = os.readlink(project.root.parent / "publish" / "current")
    assert (mirror / release / "build-info.json").is_file()
    assert (mirror / "latest-iso.txt").read_text() == (project.root.parent / "publish" / "latest-iso.txt").read_text()
    report = project.doit("report", check=True)
    page = project.build_dir / "report" / "index.html"
    assert str(page) in report.stdout
    assert 'src="durations.png"' in page.read_text()
    assert (page.parent / "durations.png").read_bytes().startswith(b"\x89PNG")


def test_a_new_stamp_removes_the_old_stamps_artifacts_but_not_the_seed(project):
    builds = project.store / "builds" / "23.0-zfs"
    old = sorted(p.name for p in builds.glob("stage1-amd64-*"))
    project.configure(snapshot={"treeish": project.new_commit("2026-02-02T00:00:00Z"), "rebuild": "always"})
    code, out = finish(nightly(project))
    assert code == 0, out
    now = sorted(p.name for p in builds.glob("stage1-amd64-*"))
    assert old and now and not set(old) & set(now)
    assert all("20260202T000000Z" in name for name in now)
    assert (builds / "stage3-amd64-openrc-seed.tar.xz").exists()
    assert project.calls()[1:] == ["stage1", "stage2", "stage3", "installcd-stage1", "iso"]


def test_a_night_that_keeps_stages_keeps_their_artifacts_and_records_the_decisions(project, tmp_path):
    from tests.support.portage_tree import UpstreamWork
    builds = project.store / "builds" / "23.0-zfs"
    before = {p.name for p in builds.glob("*-amd64-20260101T000000Z*")}
    new = UpstreamWork(project.upstream, tmp_path / "gentoo-work").commit(
        {"sys-fs/zfs-kmod/zfs-kmod-2.3.4.ebuild": "# changed\n"}, "2026-02-02T00:00:00Z")
    project.configure(snapshot={"treeish": new})
    code, out = finish(nightly(project))
    assert code == 0, out
    assert project.calls() == ["snapshot", "iso"]
    now = {p.name for p in builds.glob("*-amd64-*")}
    kept = {name for name in before if not name.startswith("livecd-stage2-")}
    assert kept and kept <= now
    assert not {name for name in before if name.startswith("livecd-stage2-")} & now
    assert "livecd-stage2-amd64-20260202T000000Z.tar.xz" in now
    last = json.loads((project.build_dir / "history.jsonl").read_text().splitlines()[-1])
    assert [line.split(":")[0] for line in last["decisions"]] == ["stage1", "stage2", "stage3", "installcd-stage1", "iso"]
    assert last["decisions"][-1] == "iso: rebuild (sys-fs/zfs-kmod changed)"

    code, out = finish(nightly(project))
    assert code == 0, out
    assert project.calls() == []
    last = json.loads((project.build_dir / "history.jsonl").read_text().splitlines()[-1])
    assert last["decisions"] == []
