"""Every task declares the settings it reads; a declared setting that changes reruns the task."""
import ast
from pathlib import Path

import pytest

from gentoo_zfs_livecd import config as config_module
from gentoo_zfs_livecd.checkout import ROOT
from tests.support.buildgraph import Project

TASK_MODULES = sorted((ROOT / "tasks").glob("*.py"))


def test_changing_publish_dir_publishes_into_the_new_folder(tmp_path):
    project = Project(tmp_path)
    project.build()
    assert project.doit("publish").returncode == 0
    first = project.root.parent / "publish"
    assert (first / "current").is_symlink()

    moved = project.root.parent / "moved-publish"
    project.configure(publish={"dir": str(moved)})
    result = project.doit("publish")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "-- publish" not in result.stdout
    assert (moved / "current").is_symlink()
    assert (moved / "latest-iso.txt").is_file()


def test_an_undeclared_setting_cannot_be_read():
    config = config_module.Config(Path("config.yaml"), {"publish.dir": "/p", "publish.keep": 4})
    declared = config.declared(["publish.dir"])
    assert declared.get("publish.dir") == "/p"
    with pytest.raises(LookupError, match="'publish.keep' is read but not declared by the task"):
        declared.get("publish.keep")


def declared_setting_names(module: Path) -> set:
    """The string constants of the module's SETTINGS tuples (the keys a task declares)."""
    names = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "").endswith("SETTINGS") for t in node.targets):
            names |= {c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    return names


@pytest.mark.parametrize("module", TASK_MODULES, ids=lambda path: path.stem)
def test_declared_settings_are_real_keys(module):
    assert declared_setting_names(module) <= set(config_module.SCHEMA), module.name
