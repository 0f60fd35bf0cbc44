"""The deep check against a real kernel tree: Debian's linux-source, unpacked once into a
cache directory that later runs reuse."""
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.kernel import kconfig
from tests.support import CHECKOUT, TEST_CACHE, require

pytestmark = pytest.mark.kernel_tree

FULL = CHECKOUT / "kernel-configs" / "genkernel-amd64.config"
ALL_SETS = ["openzfs", "gentoo-zfs", "livecd", "legacy-2013"]


def _newest_linux_source():
    tarballs = sorted(Path("/usr/src").glob("linux-source-*.tar.xz"))
    return tarballs[-1] if tarballs else None


# What `make olddefconfig` reads: every Kconfig and Makefile, the scripts its macros run
# (scripts/, arch/*/tools/) and include/; about 90 MB instead of 1.9 GB for the whole tree.
KCONFIG_MEMBERS = ["*/Kconfig*", "*/Makefile*", "*/Kbuild*", "{top}/scripts/*",
                   "{top}/include/*", "{top}/arch/*/tools/*"]


@pytest.fixture(scope="module")
def kernel_tree():
    tarball = _newest_linux_source()
    require(tarball, "no /usr/src/linux-source-*.tar.xz", "apt-get install linux-source")
    stat = tarball.stat()
    top = tarball.name.removesuffix(".tar.xz")
    target = TEST_CACHE / f"{top}-kconfig-{stat.st_size}-{int(stat.st_mtime)}"
    if not (target / top / "Kconfig").is_file():
        TEST_CACHE.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=TEST_CACHE))
        members = [pattern.format(top=top) for pattern in KCONFIG_MEMBERS]
        subprocess.run(["tar", "-xf", str(tarball), "-C", str(staging), "--wildcards", *members],
                       check=True)
        try:
            os.rename(staging, target)
        except OSError:  # another run finished unpacking first
            shutil.rmtree(staging)
    return target / top


def with_values(text: str, changes: dict) -> str:
    for option, value in changes.items():
        text = re.sub(rf"^(# )?{option}(=.*| is not set)\n", "", text, flags=re.MULTILINE)
        text += f"# {option} is not set\n" if value == "n" else f"{option}={value}\n"
    return text


def messages(findings):
    return [finding.message for finding in findings]


def test_shipped_full_config_survives_olddefconfig(kernel_tree):
    assert kconfig.deep_check(FULL, kernel_tree, ALL_SETS) == []


def test_dropped_and_missing_options_are_explained(tmp_path, kernel_tree):
    path = tmp_path / "broken.config"
    path.write_text(with_values(FULL.read_text(), {
        "CONFIG_SQUASHFS": "n",           # SQUASHFS_XZ/ZSTD stay =y in the file
        "CONFIG_OVERLAY_FS": "n", "CONFIG_BLK_DEV_DM": "n",  # DM_SNAPSHOT stays =m
        "CONFIG_ZLIB_DEFLATE": "n",       # selected by CRYPTO_DEFLATE=m, so it comes back
    }))
    rules = {"CONFIG_ZFS_BUILTIN_MAGIC": "y", "ZLIB_DEFLATE": "off"}
    found = messages(kconfig.deep_check(path, kernel_tree, ["livecd"], user_rules=rules))
    assert found[0] == (f"{path} after olddefconfig: CONFIG_SQUASHFS is not set, rule set "
                        f"livecd wants y or m")
    assert found[1].startswith(
        f"{path}: CONFIG_SQUASHFS_XZ=y requested, but olddefconfig turned it off: it depends "
        f"on CONFIG_SQUASHFS (CONFIG_SQUASHFS is not set) [fs/squashfs/Kconfig:")
    assert found[1].endswith("; rule set livecd wants CONFIG_SQUASHFS_XZ=y or CONFIG_SQUASHFS_ZSTD=y")
    assert found[2].startswith(f"{path}: CONFIG_SQUASHFS_ZSTD=y requested, but olddefconfig "
                               f"turned it off: it depends on CONFIG_SQUASHFS")
    assert found[3].startswith(
        f"{path}: CONFIG_DM_SNAPSHOT=m requested, but olddefconfig turned it off: it depends "
        f"on CONFIG_BLK_DEV_DM (CONFIG_BLK_DEV_DM is not set) [drivers/md/Kconfig:")
    assert found[4] == (f"{path}: CONFIG_ZFS_BUILTIN_MAGIC is required by rule set user (it "
                        f"wants y), but no Kconfig file of this kernel defines it")
    assert re.match(rf"{re.escape(str(path))}: CONFIG_ZLIB_DEFLATE off requested, but "
                    rf"olddefconfig made it [ym]: it is selected by .*CONFIG_CRYPTO_DEFLATE", found[5])
    assert len(found) == 6


def test_tristate_dependency_limits_y_to_m(tmp_path, kernel_tree):
    path = tmp_path / "dm.config"
    path.write_text(with_values(FULL.read_text(), {
        "CONFIG_BLK_DEV_DM": "m", "CONFIG_DM_SNAPSHOT": "y"}))
    found = messages(kconfig.deep_check(path, kernel_tree, ["openzfs"],
                                        user_rules={"DM_SNAPSHOT": "y"}))
    assert len(found) == 1
    assert found[0].startswith(
        f"{path}: CONFIG_DM_SNAPSHOT=y requested, but olddefconfig made it m: it depends on "
        f"CONFIG_BLK_DEV_DM (CONFIG_BLK_DEV_DM=m)")
    assert found[0].endswith("; rule set user wants y")


def test_obsolete_legacy_rules_stay_notes(tmp_path, kernel_tree):
    path = tmp_path / "voluntary.config"
    path.write_text(with_values(FULL.read_text(), {
        "CONFIG_PREEMPT_NONE": "n", "CONFIG_PREEMPT_VOLUNTARY": "y"}))
    findings = kconfig.deep_check(path, kernel_tree, ["legacy-2013"])
    assert [finding.level for finding in findings] == ["obsolete"]
    assert "CONFIG_PREEMPT_NONE is not set, rule set legacy-2013 wants y" in findings[0].message


def test_missing_tree_or_tools_is_one_line(tmp_path, kernel_tree, monkeypatch):
    with pytest.raises(UserError, match="not a kernel source tree"):
        kconfig.deep_check(FULL, tmp_path, ["openzfs"])
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="deep check needs gcc, make, flex, bison"):
        kconfig.deep_check(FULL, kernel_tree, ["openzfs"])


def test_toolchain_test_dependencies_are_named(tmp_path, kernel_tree):
    # LD_ORPHAN_WARN depends only on ARCH_WANT_LD_ORPHAN_WARN and an ld-option test; with the
    # arch symbol met, the test is what olddefconfig evaluated.
    index = kconfig.read_kconfig_index(kernel_tree)
    definition, = index.definitions["LD_ORPHAN_WARN"]
    assert any("$(ld-option" in dep for dep in definition.depends)
    location, unmet = kconfig._unmet_dependencies(index.definitions["LD_ORPHAN_WARN"], 2,
                                                  {"CONFIG_ARCH_WANT_LD_ORPHAN_WARN": "y"})
    assert location.startswith("init/Kconfig:")
    assert all("$(" in dep for dep in unmet)
