"""State the build keeps (pins, the boot-test result) that is damaged, and a bad config under
`doit nightly`: one line naming the file and what to do, never a traceback."""
import pytest

from gentoo_zfs_livecd import pins
from gentoo_zfs_livecd.errors import UserError
from tests.support.buildgraph import Project


@pytest.mark.parametrize("text", ["{", "[1, 2]", ""])
def test_a_damaged_pin_is_one_line(tmp_path, text):
    pin = tmp_path / "pins" / "seed.json"
    pin.parent.mkdir()
    pin.write_text(text)
    with pytest.raises(UserError, match=f"{pin}: damaged pin .*delete it and run again"):
        pins.read(pin)
    assert pins.read(tmp_path / "pins" / "missing.json") is None


def one_error_line(result, fragment):
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output
    errors = [line for line in output.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and fragment in errors[0], output


def test_a_damaged_pin_in_a_real_build_is_one_line(tmp_path):
    project = Project(tmp_path)
    project.build()
    snapshot_pin = project.build_dir / "pins" / "snapshot.json"
    snapshot_pin.write_text("{")
    one_error_line(project.doit("list"), f"{snapshot_pin}: damaged pin")
    one_error_line(project.doit(), f"{snapshot_pin}: damaged pin")


def test_a_damaged_boot_test_result_is_one_line(tmp_path):
    from tasks.boottest import boot_test_result, result_file

    class Paths:
        boottest_dir = tmp_path / "boottest"

    class Build:
        paths = Paths

    assert boot_test_result(Build) is None
    result_file(Build).parent.mkdir()
    result_file(Build).write_text('{"outcome": ')
    with pytest.raises(UserError, match="result.json: damaged pin"):
        boot_test_result(Build)


def test_doit_nightly_with_a_bad_config_is_one_line(tmp_path):
    project = Project(tmp_path)
    project.configure(livecd={"volid": "Gentoo ZFS"})
    result = project.doit("nightly")
    assert result.returncode == 3
    one_error_line(result, "config.yaml:livecd.volid")
