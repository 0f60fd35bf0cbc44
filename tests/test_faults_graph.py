"""Faults in the middle of a build, through the real `doit`: kill -9, SIGTERM, a second doit
started another way, a removed seed. Nothing finished is lost, no second Catalyst runs."""
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.buildgraph import Project

EVERY_STAGE = ["stage1", "stage2", "stage3", "installcd-stage1", "iso"]


@pytest.fixture
def project(tmp_path):
    built = Project(tmp_path)
    assert built.build() == ["snapshot", *EVERY_STAGE]
    return built


def wait_for(condition, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def catalyst_started(project, stem):
    return lambda: project.record.exists() and f"{stem}.spec" in project.record.read_text()


def hanging_pids(project) -> list:
    return [int(pid) for pid in project.hanging.read_text().split()] if project.hanging.exists() else []


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


STARTED = []


def start_doit(project, fault, *args, cwd=None):
    """A `doit` in a session of its own (the test signals it), ended at teardown if still there."""
    STARTED.append(subprocess.Popen([sys.executable, "-m", "doit", *args], cwd=cwd or project.root,
                            env=project.environment(fault), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True))
    return STARTED[-1]


def lock_is_free(project) -> bool:
    fd = os.open(project.build_dir / "lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.fixture
def cleanup(project):
    yield
    while STARTED:
        child = STARTED.pop()
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
    project.stop_hanging_catalysts()


def test_stages_finished_before_a_kill_9_are_not_rebuilt(project, cleanup):
    (project.root / "specs" / "stage1.spec.j2").open("a").write("\nupdate_seed: no\n")
    child = start_doit(project, "iso:hang")
    wait_for(catalyst_started(project, "iso"))
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    project.stop_hanging_catalysts()
    assert project.calls() == EVERY_STAGE
    assert project.build() == ["iso"]


def test_after_kill_9_the_orphaned_catalyst_keeps_the_lock_until_the_next_run_takes_over(project, cleanup):
    (project.root / "specs" / "stage3.spec.j2").open("a").write("\nportage_prefix: releng\n")
    child = start_doit(project, "stage3:hang")
    wait_for(catalyst_started(project, "stage3"))
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    orphan = hanging_pids(project)
    assert orphan and all(alive(pid) for pid in orphan)
    assert not lock_is_free(project)  # no second build while the orphan writes
    result = project.doit(check=True)
    took_over = [line for line in result.stderr.splitlines() if "took over" in line]
    assert len(took_over) == 1 and f"build {child.pid} is gone" in took_over[0], result.stderr
    assert not any(alive(pid) for pid in orphan)
    assert project.calls() == ["stage3", "stage3", "installcd-stage1", "iso"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_sigint_ends_catalyst_first(project, cleanup, sig):
    (project.root / "specs" / "stage3.spec.j2").open("a").write("\nportage_prefix: releng\n")
    child = start_doit(project, "stage3:hang")
    wait_for(catalyst_started(project, "stage3"))
    os.kill(child.pid, sig)
    child.communicate(timeout=120)
    assert child.returncode != 0
    assert not any(alive(pid) for pid in hanging_pids(project))
    assert lock_is_free(project)


def test_doit_f_from_another_folder_takes_the_lock(project, cleanup, tmp_path):
    (project.root / "specs" / "stage3.spec.j2").open("a").write("\nportage_prefix: releng\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    child = start_doit(project, "stage3:hang", "-f", str(project.root / "dodo.py"), cwd=elsewhere)
    wait_for(catalyst_started(project, "stage3"))
    project.calls()
    second = project.doit()
    assert second.returncode != 0
    assert f"another build is running (pid {child.pid}, since " in second.stderr
    assert project.calls() == []
    third = subprocess.run([sys.executable, "-m", "doit", "-f", str(project.root / "dodo.py")], cwd=elsewhere,
                           env=project.environment(), capture_output=True, text=True, timeout=300, check=False)
    assert third.returncode != 0 and "another build is running" in third.stderr
    assert project.calls() == []
    assert project.doit("list", check=True).returncode == 0


def test_a_removed_seed_is_placed_again(project):
    placed = list((project.store / "builds").rglob("*-seed.tar*"))
    assert placed
    for seed in placed:
        seed.unlink()
    assert project.build() == []
    assert all(seed.exists() for seed in placed)
    (project.root / "specs" / "stage1.spec.j2").open("a").write("\nupdate_seed: no\n")
    assert project.build() == EVERY_STAGE


def test_two_configs_sharing_storedir_and_rel_type_are_refused_naming_both(project):
    import yaml
    second = project.root / "second.yaml"
    second.write_text(yaml.safe_dump(project.settings))
    refused = project.doit(f"config={second}")
    assert refused.returncode != 0
    errors = [line for line in (refused.stdout + refused.stderr).splitlines() if "ERROR" in line]
    assert len(errors) == 1, refused.stdout + refused.stderr
    assert str(second) in errors[0] and str(project.config) in errors[0] and "rel_type" in errors[0]
    assert project.calls() == []
    second.write_text(yaml.safe_dump(dict(project.settings, rel_type="23.0-zfs-second")))
    assert project.build(f"config={second}") == EVERY_STAGE
    assert project.build() == []
