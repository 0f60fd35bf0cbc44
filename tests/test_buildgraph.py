"""The incremental build graph end to end: real doit, the instrumented Catalyst, real files."""
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.buildgraph import Project

EVERY_STAGE = ["stage1", "stage2", "stage3", "installcd-stage1", "iso"]


@pytest.fixture
def project(tmp_path):
    built = Project(tmp_path)
    calls = built.build()
    assert calls == ["snapshot", *EVERY_STAGE]
    return built


def edit(path, text="\n# edited\n"):
    with open(path, "a") as out:
        out.write(text)


def test_nothing_changed_runs_nothing(project):
    assert project.build() == []


def test_doit_list_names_every_task_with_a_description(project):
    listing = project.doit("list", check=True).stdout
    for task in ["check", "snapshot", "seed", "compat", "specs", *EVERY_STAGE, "release"]:
        line = next(line for line in listing.splitlines() if line.split()[0] == task)
        assert len(line.split()) > 2, line


@pytest.mark.parametrize("change", ["template", "root_overlay", "fsscript", "kernel_config", "volid"])
def test_iso_inputs_rebuild_only_the_iso(project, change):
    root = project.root
    if change == "template":
        edit(root / "specs" / "installcd-stage2-minimal.spec.j2", "\n{# edited #}\nlivecd/readme: \n")
        edit(root / "specs" / "installcd-stage2-minimal.spec.j2", "livecd/motd: /etc/motd\n")
    elif change == "root_overlay":
        (root / "overlay" / "root_overlay" / "etc" / "motd").write_text("ZFS inside\n")
    elif change == "fsscript":
        edit(root / "overlay" / "fsscripts" / "livecd-stage2.sh")
    elif change == "kernel_config":
        edit(root / "kernel-configs" / "dist-livecd.config", "CONFIG_NLS_UTF8=y\n")
    else:
        project.configure(livecd={"volid": "ZFS-TEST-{datestamp}"})
    assert project.build() == ["iso"]


@pytest.mark.parametrize("change", ["template", "packages", "confdir"])
def test_cd_inputs_rebuild_both_cd_stages(project, change):
    root = project.root
    if change == "template":
        edit(root / "specs" / "installcd-stage1.spec.j2", "\ncompression_mode: xz\n")
    elif change == "packages":
        project.configure(livecd={"packages": ["app-editors/nano", "sys-apps/pciutils"]})
    else:
        (root / "overlay" / "portage" / "isos" / "package.use" / "extra").write_text("app-editors/nano -spell\n")
    assert project.build() == ["installcd-stage1", "iso"]


def test_stage3_template_rebuilds_from_stage3(project):
    edit(project.root / "specs" / "stage3.spec.j2", "\nportage_prefix: releng\n")
    assert project.build() == ["stage3", "installcd-stage1", "iso"]


@pytest.mark.parametrize("change", ["template", "confdir", "seed", "snapshot"])
def test_early_inputs_rebuild_every_stage(project, change, tmp_path):
    root = project.root
    if change == "template":
        edit(root / "specs" / "stage1.spec.j2", "\nupdate_seed: no\n")
    elif change == "confdir":
        edit(root / "overlay" / "portage" / "stages" / "package.use" / "releng" / "circular", "dev-lang/perl -minimal\n")
    elif change == "seed":
        with open(project.seed, "ab") as out:
            out.write(b"\0")
    else:
        # A moved tree rebuilds every stage when told to (the default rebuilds only what it reaches:
        # test_rebuild_graph.py).
        project.configure(snapshot={"treeish": project.new_commit("2026-02-02T00:00:00Z"), "rebuild": "always"})
    calls = project.build()
    assert calls == (["snapshot"] if change == "snapshot" else []) + EVERY_STAGE


def test_touching_the_seed_or_any_artifact_rebuilds_nothing(project):
    for path in [project.seed, *project.artifacts()]:
        os.utime(path, (time.time() + 100, time.time() + 100))
    assert project.build() == []
    assert project.build() == []


def test_readme_or_tests_changes_rebuild_nothing(project):
    (project.root / "README.md").write_text("changed\n")
    (project.root / "tests").mkdir()
    (project.root / "tests" / "test_new.py").write_text("x = 1\n")
    assert project.build() == []


def test_failed_stage_reruns_and_downstream_waits(project):
    edit(project.root / "specs" / "stage3.spec.j2", "\nportage_prefix: releng\n")
    failed = project.doit(fault="stage3:exit2")
    assert failed.returncode != 0
    assert "ERROR: stage3: stage3: catalyst exited 2" in failed.stdout
    assert "Exception running action sequence" in failed.stderr  # the log tail
    assert [stem for stem, _ in project.argv()] == ["stage3"]  # downstream waited
    retry = project.argv(project.doit(check=True))
    assert [stem for stem, _ in retry] == ["stage3", "installcd-stage1", "iso"]
    # Same inputs as the failed attempt: no -a, so Catalyst's autoresume picks up where it stopped.
    assert "-a" not in retry[0][1]
    assert "-a" in retry[1][1]
    assert project.build() == []


def test_exit_zero_without_artifact_fails_naming_it(project):
    edit(project.root / "specs" / "stage3.spec.j2", "\nportage_prefix: releng\n")
    result = project.doit(fault="stage3:noartifact")
    assert result.returncode != 0
    line = next(line for line in result.stdout.splitlines() if line.startswith("ERROR"))
    assert "did not write" in line and "stage3-amd64-" in line
    assert "Traceback" not in result.stdout + result.stderr
    assert project.calls() == ["stage3"]
    assert project.build() == ["stage3", "installcd-stage1", "iso"]


def build_hanging_in_stage3(project):
    """A `doit` whose stage3 Catalyst never returns, once that Catalyst has started."""
    edit(project.root / "specs" / "stage3.spec.j2", "\nportage_prefix: releng\n")
    child = subprocess.Popen([sys.executable, "-m", "doit"], cwd=project.root, env=project.environment("stage3:hang"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(lambda: project.record.exists() and "stage3" in project.record.read_text())
    return child


def test_kill_during_a_stage_leaves_nothing_believed(project):
    child = build_hanging_in_stage3(project)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    project.stop_hanging_catalysts()
    project.calls()
    assert project.build() == ["stage3", "installcd-stage1", "iso"]


def test_a_second_build_is_refused_while_one_runs(project):
    child = build_hanging_in_stage3(project)
    try:
        second = project.doit()
        assert second.returncode != 0
        assert f"another build is running (pid {child.pid}, since " in second.stderr
        assert project.doit("list", check=True).returncode == 0
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        project.stop_hanging_catalysts()


def wait_for(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_template_catalyst_would_reject_stops_before_any_stage(project):
    edit(project.root / "specs" / "stage3.spec.j2", "\nchost: x86_64-pc-linux-gnu\n")
    result = project.doit()
    assert result.returncode != 0
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR")]
    assert errors and all("stage3.spec" in line for line in errors), result.stdout
    assert 'Argument "chost" not recognized' in errors[0]
    assert project.calls() == []


def test_a_broken_kernel_config_stops_before_any_stage_one_line_per_problem(project):
    edit(project.root / "kernel-configs" / "dist-livecd.config",
         "# CONFIG_SQUASHFS is not set\nCONFIG_DEBUG_LOCK_ALLOC=y\n")
    result = project.doit()
    assert result.returncode != 0
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 3, result.stdout  # DEBUG_LOCK_ALLOC breaks openzfs and gentoo-zfs
    assert any("CONFIG_SQUASHFS" in line and "livecd" in line for line in errors)
    assert any("CONFIG_DEBUG_LOCK_ALLOC" in line and "openzfs" in line for line in errors)
    assert project.calls() == []


def test_without_qemu_the_boot_test_is_skipped_and_publish_refuses(project):
    project.configure(boottest={"enabled": "auto", "qemu": "/nonexistent/qemu-system-x86_64"})
    result = project.doit(check=True)
    assert "boottest: skipped: /nonexistent/qemu-system-x86_64 not found" in result.stdout
    refused = project.doit("publish")
    assert refused.returncode != 0
    assert "ERROR: publish: publish: the ISO was not boot-tested" in refused.stdout
    assert not (project.root.parent / "publish").exists()
    project.configure(boottest={"enabled": "false"})
    assert project.doit("publish").returncode == 0
    assert (project.root.parent / "publish" / "current").is_symlink()


def test_catalyst_3_and_a_missing_catalyst_are_refused_in_one_line(tmp_path):
    old = tmp_path / "catalyst3"
    old.write_text("#!/bin/sh\necho 'usage: catalyst [-h] [-s SNAPSHOT] (snapshot: a version stamp)'\n")
    old.chmod(0o755)
    project = Project(tmp_path, catalyst={"command": [str(old)]})
    result = project.doit()
    assert result.returncode != 0
    assert "is Catalyst 3.x or older" in result.stdout
    project.configure(catalyst={"command": ["no-such-catalyst"]})
    result = project.doit()
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "not found" in errors[0] and "./build-iso rehearse=1" in errors[0]
    assert not (project.store / "builds").exists()


def test_a_pinned_kernel_is_masked_in_the_cd_confdir(project):
    project.configure(kernel={"version": "6.12.41"})
    assert project.build() == ["installcd-stage1", "iso"]
    mask = project.build_dir / "portage" / "isos" / "package.mask" / "zz-gentoo-zfs-livecd-kernel"
    assert mask.read_text().splitlines() == [">sys-kernel/gentoo-kernel-6.12.41", ">virtual/dist-kernel-6.12.41"]
