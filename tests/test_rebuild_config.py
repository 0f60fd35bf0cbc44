"""The two settings of relevant rebuilds: defaults, null, and one-line refusals."""
import pytest

from gentoo_zfs_livecd import config
from gentoo_zfs_livecd.errors import UserError

KERNEL = "kernel:\n  config: {}\n"


def load(tmp_path, text):
    (tmp_path / "k.config").write_text("CONFIG_ZFS=m\n")
    path = tmp_path / "config.yaml"
    path.write_text(KERNEL.format(tmp_path / "k.config") + text)
    return config.load(path)


def test_defaults_and_null(tmp_path):
    loaded = load(tmp_path, "")
    assert (loaded.get("snapshot.rebuild"), loaded.get("snapshot.full_rebuild_days")) == ("relevant", 7)
    loaded = load(tmp_path, "snapshot:\n  rebuild: always\n  full_rebuild_days: null\n")
    assert (loaded.get("snapshot.rebuild"), loaded.get("snapshot.full_rebuild_days")) == ("always", None)


@pytest.mark.parametrize("text, message", [
    ("snapshot:\n  rebuild: sometimes\n", "config.yaml:snapshot.rebuild: 'sometimes' is not one of: relevant, always"),
    ("snapshot:\n  full_rebuild_days: 0\n", "config.yaml:snapshot.full_rebuild_days: 0 must be at least 1"),
    ("snapshot:\n  full_rebuild_days: weekly\n", "config.yaml:snapshot.full_rebuild_days: must be a whole number"),
])
def test_bad_values_are_one_line(tmp_path, text, message):
    with pytest.raises(UserError) as error:
        load(tmp_path, text)
    assert message in str(error.value) and "\n" not in str(error.value)
