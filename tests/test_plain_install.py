"""The project runs from its checkout, also when the venv has a plain (not editable) install."""
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.support.buildgraph import Project


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A copy of the project and a venv holding a plain `pip install` of that copy; the venv
    reaches this run's dependencies through a .pth file instead of downloading them again."""
    where = tmp_path_factory.mktemp("plain")
    project = Project(where)
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run([str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install", "--quiet",
                    "--no-deps", str(project.root)], check=True, capture_output=True)
    # doit's own command, as pip writes console scripts (doit's entry point: doit.__main__:main).
    doit = venv / "bin" / "doit"
    doit.write_text(f"#!{venv / 'bin/python'}\nimport sys\nfrom doit.__main__ import main\nsys.exit(main())\n")
    doit.chmod(0o755)
    return project, venv, site


def run(argv, cwd, env=None):
    env = {key: value for key, value in (env or os.environ).items() if key != "PYTHONPATH"}
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_only_the_launcher_is_installed(installed):
    _, _, site = installed
    assert (site / "gentoo_zfs_livecd_launcher.py").is_file()
    assert not (site / "tasks").exists()
    assert not (site / "gentoo_zfs_livecd").exists()


def test_doit_rehearses_with_the_checkouts_code(installed):
    project, venv, _ = installed
    result = run([venv / "bin/doit", "rehearse=1"], project.root, project.environment())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[rehearsal]    verify: " in result.stdout
    # A changed checkout (as after a `git pull`) runs at once, without reinstalling.
    check = project.root / "tasks" / "check.py"
    check.write_text(check.read_text().replace(
        '"""Check config, render and lint every spec', '"""Freshly pulled: check config, render and lint every spec'))
    listing = run([venv / "bin/doit", "list"], project.root)
    assert "Freshly pulled: check config" in listing.stdout, listing.stdout + listing.stderr


def test_nightly_finds_its_checkout_from_any_directory(installed, tmp_path):
    project, venv, _ = installed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run([venv / "bin/gentoo-zfs-livecd-nightly", "--project", project.root, "--config",
                  project.config, "--rehearse"], elsewhere, project.environment())
    assert result.returncode == 0, result.stdout + result.stderr
    assert (project.root / "build" / "rehearsal" / "config" / "history.jsonl").is_file()
    refused = run([venv / "bin/gentoo-zfs-livecd-nightly", "--project", elsewhere], elsewhere)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"ERROR: {elsewhere}: not a gentoo-zfs-livecd checkout (no dodo.py); "
                                      "name the checkout with --project DIR")
