"""The nightly always tells: SIGTERM, SIGKILL, an exception outside any task, a failed task, a
lock held for too long. Driven through the real `doit nightly` with a webhook that records."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.buildgraph import Project


def nightly(project, fault=None):
    return subprocess.Popen([sys.executable, "-m", "doit", "nightly"], cwd=project.root, env=project.environment(fault),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(process):
    out, _ = process.communicate(timeout=300)
    return process.returncode, out


def history(project) -> list:
    return [json.loads(line) for line in (project.build_dir / "history.jsonl").read_text().splitlines()]


def hooks(httpserver) -> list:
    return [request.get_json() for request, _ in httpserver.log]


@pytest.fixture
def project(tmp_path, httpserver):
    built = Project(tmp_path)
    code, out = finish(nightly(built))
    assert code == 0, out
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    built.configure(notify={"webhook": {"url": httpserver.url_for("/hook")}})
    built.calls()
    yield built
    built.stop_hanging_catalysts()


def start_hanging_night(project):
    (project.root / "specs" / "stage3.spec.j2").open("a").write("\nportage_prefix: releng\n")
    running = nightly(project, fault="stage3:hang")
    deadline = time.monotonic() + 120
    while not (project.record.exists() and "stage3.spec" in project.record.read_text()):
        assert running.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    return running


def test_sigterm_is_recorded_and_notified(project, httpserver):
    running = start_hanging_night(project)
    running.send_signal(signal.SIGTERM)
    code, _ = finish(running)
    assert code != 0
    assert history(project)[-1]["outcome"] == "interrupted"
    assert [hook["outcome"] for hook in hooks(httpserver)] == ["interrupted"]


def test_a_killed_night_is_reported_unfinished_by_the_next(project, httpserver):
    running = start_hanging_night(project)
    os.killpg(running.pid, signal.SIGKILL)
    running.communicate()
    project.stop_hanging_catalysts()
    assert [run["outcome"] for run in history(project)] == ["succeeded"]
    code, out = finish(nightly(project))
    assert code == 0, out
    assert "did not finish (killed or power cut)" in out
    assert [run["outcome"] for run in history(project)] == ["succeeded", "unfinished", "succeeded"]
    assert [hook["outcome"] for hook in hooks(httpserver)] == ["unfinished"]


def test_an_exception_outside_any_task_is_recorded_and_notified(project, httpserver):
    # The night cannot write in its build folder (as on a full or read-only disk): it fails
    # outside doit's tasks.
    marker = project.build_dir / "nightly.running"
    marker.mkdir()
    (marker / "blocker").write_text("x")
    code, out = finish(nightly(project))
    assert code != 0
    assert "Traceback" not in out
    assert "nightly failed in nightly" in out
    assert history(project)[-1]["outcome"] == "failed"
    assert [hook["outcome"] for hook in hooks(httpserver)] == ["failed"]


def test_a_failed_night_prints_the_tasks_own_error(project, httpserver):
    (project.root / "specs" / "stage3.spec.j2").open("a").write("\nportage_prefix: releng\n")
    code, out = finish(nightly(project, fault="stage3:exit2"))
    assert code != 0
    assert "nightly failed in stage3" in out
    assert "ERROR: stage3: stage3: catalyst exited 2" in out
    assert history(project)[-1]["outcome"] == "failed"


def test_a_lock_held_too_long_notifies(project, httpserver):
    lock = project.build_dir / "lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDWR)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.ftruncate(fd, 0)\n"
        "os.write(fd, f'{os.getpid()} 01:00 {time.time() - 30 * 3600:.0f}\\n'.encode())\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, out = finish(nightly(project))
    finally:
        holder.kill()
        holder.wait()
    assert code == 0
    assert "has been held for 30.0 hours" in out
    assert [hook["outcome"] for hook in hooks(httpserver)] == [f"blocked for 30 hours by pid {holder.pid}"]
