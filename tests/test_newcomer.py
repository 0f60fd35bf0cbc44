"""What a newcomer meets first: one task name everywhere, where the ISO is, the contrib units
for the checkout they use, and ./test and ./build-iso sharing one .venv."""
import os
import subprocess
from pathlib import Path

import pytest

from tests.support import CHECKOUT
from tests.support.buildgraph import Project


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return Project(tmp_path_factory.mktemp("newcomer"))


def test_kernel_deep_check_has_one_name(project):
    listed = project.doit("list", check=True).stdout.split()
    assert "kernel-deep-check" in listed and "kernel_deep_check" not in listed
    assert "kernel-deep-check" in (CHECKOUT / "README.md").read_text()
    result = project.doit("kernel-deep-check")
    assert result.returncode != 0 and "Traceback" not in result.stdout + result.stderr
    assert "kernel.source_tree is not set" in result.stdout + result.stderr


def test_plain_doit_ends_saying_where_the_iso_is(project):
    result = project.doit(check=True)
    last = [line for line in result.stdout.splitlines() if line.strip()][-1]
    assert last.strip().startswith("ISO: "), result.stdout
    iso = Path(last.split("ISO: ", 1)[1])
    assert iso.is_file() and iso.suffix == ".iso"


def test_contrib_units_are_generated_for_this_checkout(tmp_path):
    out = tmp_path / "units"
    subprocess.run([str(CHECKOUT / "contrib" / "generate-units"), "--checkout", str(tmp_path / "co"), str(out)],
                   check=True, capture_output=True, text=True)
    for name in ("gentoo-zfs-livecd-nightly.service", "gentoo-zfs-livecd-nightly.timer", "gentoo-zfs-livecd.cron"):
        text = (out / name).read_text()
        assert "/srv/gentoo-zfs-livecd" not in text and "@CHECKOUT@" not in text, name
    assert f"WorkingDirectory={tmp_path / 'co'}" in (out / "gentoo-zfs-livecd-nightly.service").read_text()
    # systemd splits unquoted paths at spaces and expands '%': such a checkout is refused in one line.
    refused = subprocess.run([str(CHECKOUT / "contrib" / "generate-units"), "--checkout", str(tmp_path / "my checkout"),
                              str(out)], capture_output=True, text=True)
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr


def test_test_and_build_iso_share_one_venv_install(tmp_path):
    """contrib/venv.sh with a .venv whose python only records pip installs (the real pip is what
    ./test and ./build-iso run; here only how often setup_venv calls it matters)."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    recorder = tmp_path / ".venv" / "bin" / "python"
    recorder.write_text(f"#!/bin/sh\necho \"$*\" >> {tmp_path / 'pip.log'}\n")
    recorder.chmod(0o755)
    script = f". {CHECKOUT / 'contrib' / 'venv.sh'}; " + "; ".join(
        f"setup_venv '{extra}'" for extra in (".[test]", ".", ".[test]", ".", ".[test]"))
    subprocess.run(["sh", "-c", script], cwd=tmp_path, check=True, env=dict(os.environ, PYTHON="python3"))
    installs = [line for line in (tmp_path / "pip.log").read_text().splitlines() if "install" in line and "-e" in line]
    assert len(installs) == 1, installs
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    subprocess.run(["sh", "-c", f". {CHECKOUT / 'contrib' / 'venv.sh'}; setup_venv ."], cwd=tmp_path, check=True)
    installs = [line for line in (tmp_path / "pip.log").read_text().splitlines() if "install" in line and "-e" in line]
    assert len(installs) == 2, installs
