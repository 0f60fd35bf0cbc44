"""Bad config input: one line naming config.yaml:<key>, non-zero exit, no traceback, nothing built."""
import copy

import pytest
import yaml

from tests.support.buildgraph import Project

BAD = {
    "unknown key": ({"colour": "blue"}, "config.yaml:colour"),
    "unknown nested key": ({"seed": {"flavor": "openrc"}}, "config.yaml:seed.flavor"),
    "wrong type": ({"catalyst": {"jobs": "many"}}, "config.yaml:catalyst.jobs"),
    "unknown stage": ({"stages": ["stage1", "stage4", "stage3"]}, "config.yaml:stages"),
    "volid of 33 characters": ({"livecd": {"volid": "A" * 33}}, "config.yaml:livecd.volid"),
    "volid with a space": ({"livecd": {"volid": "Gentoo ZFS"}}, "config.yaml:livecd.volid"),
    "version_stamp with a slash": ({"version_stamp": "2025/01"}, "config.yaml:version_stamp"),
    "version_stamp with a space": ({"version_stamp": "2025 01"}, "config.yaml:version_stamp"),
    "spec value with #": ({"profile": "default/linux/amd64/23.0#x"}, "config.yaml:profile"),
    "spec value with %": ({"rel_type": "100%"}, "config.yaml:rel_type"),
    "spec value with a newline": ({"livecd": {"packages": ["sys-fs/zfs\nboot/kernel: x"]}},
                                  "config.yaml:livecd.packages"),
    "missing kernel config": ({"kernel": {"config": "kernel-configs/nope.config"}}, "config.yaml:kernel.config"),
    "catalyst.command not a list": ({"catalyst": {"command": "catalyst -v"}}, "config.yaml:catalyst.command"),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return Project(tmp_path_factory.mktemp("config"))


def assert_one_line_error(result, key):
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.strip()]
    assert len(errors) == 1, output
    assert key in errors[0], errors[0]


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_is_one_line_and_builds_nothing(project, case):
    settings, key = BAD[case]
    good = copy.deepcopy(project.settings)
    try:
        project.configure(**settings)
        assert_one_line_error(project.doit(), key)
        assert not (project.store / "builds").exists()
        assert project.calls() == []
    finally:
        project.settings = good
        project.config.write_text(yaml.safe_dump(good))


def test_malformed_yaml(project):
    good = project.config.read_text()
    try:
        project.config.write_text("storedir: [unclosed\n")
        result = project.doit()
        assert_one_line_error(result, "config.yaml:")
        assert "malformed YAML" in result.stdout + result.stderr
    finally:
        project.config.write_text(good)


def test_another_config_file_has_its_own_build_folder(project):
    other = project.root / "other.yaml"
    other.write_text(project.config.read_text())
    assert project.doit(f"config={other}", "check", check=True).returncode == 0
    assert (project.root / "build" / "other" / "doit.sqlite").is_file()
    assert not (project.root / "build" / "config" / "doit.sqlite").exists()
