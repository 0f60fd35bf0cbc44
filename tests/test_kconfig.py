import re
from pathlib import Path

import pytest

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.kernel import kconfig

REPO = Path(__file__).resolve().parent.parent
FULL = REPO / "kernel-configs" / "genkernel-amd64.config"
FRAGMENT = REPO / "kernel-configs" / "dist-livecd.config"
ALL_SETS = ["openzfs", "gentoo-zfs", "livecd", "legacy-2013"]


def check_file(path, rule_set_names, user_rules=None, fragment=False, strict_legacy=False):
    """`kconfig.check` on a file, naming it in the messages."""
    return kconfig.check(kconfig.read_config(path), rule_set_names, user_rules, fragment, strict_legacy,
                         source=str(path))


def with_values(text: str, changes: dict) -> str:
    """The config text with each option's lines replaced: value None drops it, "n" writes
    '# CONFIG_X is not set', anything else CONFIG_X=value."""
    for option, value in changes.items():
        text = re.sub(rf"^(# )?{option}(=.*| is not set)\n", "", text, flags=re.MULTILINE)
        if value == "n":
            text += f"# {option} is not set\n"
        elif value is not None:
            text += f"{option}={value}\n"
    return text


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def messages(findings, level=None):
    return [finding.message for finding in findings if level in (None, finding.level)]


def test_shipped_full_config_passes_every_rule_set_strictly():
    config = kconfig.read_config(FULL)
    assert re.fullmatch(r"6\.1\.\d+", config.version)
    assert config.arch == "x86"
    assert kconfig.check(config, ALL_SETS, strict_legacy=True, source=str(FULL)) == []


def test_shipped_fragment_passes_and_turns_drm_off():
    config = kconfig.read_config(FRAGMENT)
    assert config.values["CONFIG_DRM"] == "n"
    assert config.values["CONFIG_LOCALVERSION"] == '""'
    assert kconfig.check(config, ALL_SETS, fragment=True, strict_legacy=True) == []


def test_parser_reads_every_value_form_and_the_header():
    config = kconfig.parse_config(
        "#\n# Linux/x86_64 6.6.30-gentoo Kernel Configuration\n#\n"
        "CONFIG_A=y\nCONFIG_B=m\nCONFIG_C=\"a \\\"quoted\\\" string\"\n"
        "CONFIG_D=0x1000\nCONFIG_E=64\n# CONFIG_F is not set\nCONFIG_G=n\n\n# a comment\n"
        "CONFIG_A=m\n"
    )
    assert config.version == "6.6.30-gentoo" and config.arch == "x86_64"
    assert config.values == {"CONFIG_A": "m", "CONFIG_B": "m",
                             "CONFIG_C": '"a \\"quoted\\" string"', "CONFIG_D": "0x1000",
                             "CONFIG_E": "64", "CONFIG_F": "n", "CONFIG_G": "n"}
    assert kconfig.parse_config("# Linux/x86 6.6.30 Kernel Configuration\n").version == "6.6.30"
    assert kconfig.parse_config("CONFIG_A=y\n").version is None


def test_parser_rejects_garbage_with_file_and_line(tmp_path):
    path = write(tmp_path, "bad.config", "CONFIG_A=y\nCONFIG_DRM = n\n")
    with pytest.raises(UserError, match=r"bad.config:2: cannot parse 'CONFIG_DRM = n'"):
        kconfig.read_config(path)
    with pytest.raises(UserError, match="kernel config not found"):
        kconfig.read_config(tmp_path / "absent.config")


def _simple_rules():
    for name in ("openzfs", "gentoo-zfs", "livecd"):
        for item in kconfig.RULE_SETS[name]:
            if isinstance(item, kconfig.Rule):
                yield pytest.param(name, item, id=f"{name}-{item.option}")


@pytest.mark.parametrize("rule_set, rule", list(_simple_rules()))
def test_breaking_each_rule_is_reported(tmp_path, rule_set, rule):
    broken_value = "y" if rule.want == "off" else "n"
    path = write(tmp_path, "x.config", with_values(FULL.read_text(), {rule.option: broken_value}))
    found = messages(check_file(path, [rule_set]), "error")
    observed = f"{rule.option}=y" if broken_value == "y" else f"{rule.option} is not set"
    assert found == [f"{path}: {observed}, rule set {rule_set} wants {rule.describe_want()}"]


def test_absent_and_module_values_are_named(tmp_path):
    path = write(tmp_path, "x.config", with_values(FULL.read_text(),
                                                   {"CONFIG_EFI_STUB": None, "CONFIG_RD_XZ": "m"}))
    assert messages(check_file(path, ["livecd"])) == [
        f"{path}: CONFIG_RD_XZ=m, rule set livecd wants y",
        f"{path}: CONFIG_EFI_STUB is absent, rule set livecd wants y",
    ]


def test_squashfs_message_example(tmp_path):
    path = write(tmp_path, "x.config", with_values(FULL.read_text(), {"CONFIG_SQUASHFS": "n"}))
    config = kconfig.read_config(path)
    found = messages(kconfig.check(config, ["livecd"], source="kernel-configs/x.config"))
    assert found == ["kernel-configs/x.config: CONFIG_SQUASHFS is not set, rule set livecd wants y or m"]


def test_squashfs_compressor_group(tmp_path):
    text = FULL.read_text()
    only_zstd = write(tmp_path, "zstd.config", with_values(text, {"CONFIG_SQUASHFS_XZ": "n"}))
    assert check_file(only_zstd, ["livecd"]) == []
    neither = write(tmp_path, "neither.config",
                    with_values(text, {"CONFIG_SQUASHFS_XZ": "n", "CONFIG_SQUASHFS_ZSTD": None}))
    assert messages(check_file(neither, ["livecd"])) == [
        f"{neither}: CONFIG_SQUASHFS_XZ is not set, CONFIG_SQUASHFS_ZSTD is absent, rule set "
        f"livecd wants CONFIG_SQUASHFS_XZ=y or CONFIG_SQUASHFS_ZSTD=y"]


def test_overlay_or_device_mapper_snapshots(tmp_path):
    text = FULL.read_text()
    dm_only = write(tmp_path, "dm.config", with_values(text, {"CONFIG_OVERLAY_FS": "n"}))
    assert check_file(dm_only, ["livecd"]) == []
    overlay_only = write(tmp_path, "ov.config", with_values(text, {"CONFIG_BLK_DEV_DM": "n"}))
    assert check_file(overlay_only, ["livecd"]) == []
    neither = write(tmp_path, "neither.config",
                    with_values(text, {"CONFIG_OVERLAY_FS": "n", "CONFIG_DM_SNAPSHOT": "n"}))
    assert messages(check_file(neither, ["livecd"])) == [
        f"{neither}: CONFIG_OVERLAY_FS is not set, CONFIG_BLK_DEV_DM=y, CONFIG_DM_SNAPSHOT is not "
        f"set, rule set livecd wants CONFIG_OVERLAY_FS=y/m or (CONFIG_BLK_DEV_DM=y/m and "
        f"CONFIG_DM_SNAPSHOT=y/m)"]


def test_fragment_reports_only_what_it_changes(tmp_path):
    unrelated = write(tmp_path, "frag.config", "CONFIG_DRM=n\nCONFIG_LOCALVERSION=\"\"\n")
    assert check_file(unrelated, ALL_SETS, fragment=True, strict_legacy=True) == []
    as_full = check_file(unrelated, ["openzfs"])
    assert f"{unrelated}: CONFIG_MODULES is absent, rule set openzfs wants y" in messages(as_full)

    harmful = write(tmp_path, "harm.config",
                    "CONFIG_DRM=n\nCONFIG_SQUASHFS=n\n# CONFIG_ZLIB_DEFLATE is not set\n"
                    "CONFIG_DEBUG_LOCK_ALLOC=y\nCONFIG_RD_XZ=m\n")
    assert messages(check_file(harmful, ["openzfs", "livecd"], fragment=True)) == [
        f"{harmful}: CONFIG_ZLIB_DEFLATE is not set, rule set openzfs wants y or m",
        f"{harmful}: CONFIG_DEBUG_LOCK_ALLOC=y, rule set openzfs wants it off",
        f"{harmful}: CONFIG_RD_XZ=m, rule set livecd wants y",
        f"{harmful}: CONFIG_SQUASHFS is not set, rule set livecd wants y or m",
    ]


def test_fragment_groups_fail_only_when_the_fragment_breaks_every_alternative(tmp_path):
    overlay_off = write(tmp_path, "a.config", "CONFIG_OVERLAY_FS=n\n")
    assert check_file(overlay_off, ["livecd"], fragment=True) == []
    both_off = write(tmp_path, "b.config", "CONFIG_OVERLAY_FS=n\nCONFIG_DM_SNAPSHOT=n\n")
    assert messages(check_file(both_off, ["livecd"], fragment=True)) == [
        f"{both_off}: CONFIG_OVERLAY_FS is not set, CONFIG_DM_SNAPSHOT is not set, rule set "
        f"livecd wants CONFIG_OVERLAY_FS=y/m or (CONFIG_BLK_DEV_DM=y/m and CONFIG_DM_SNAPSHOT=y/m)"]


def test_legacy_2013_is_obsolete_unless_strict(tmp_path):
    path = write(tmp_path, "old.config", with_values(FULL.read_text(), {
        "CONFIG_PREEMPT_NONE": "n", "CONFIG_PREEMPT_VOLUNTARY": "y", "CONFIG_KALLSYMS": "n"}))
    findings = check_file(path, ALL_SETS)
    assert [finding.level for finding in findings] == ["obsolete", "obsolete"]
    assert kconfig.errors(findings) == []
    kallsyms, preempt = messages(findings)
    assert kallsyms.startswith(f"{path}: CONFIG_KALLSYMS is not set, rule set legacy-2013 wants y (")
    assert "44778f4110" in kallsyms and "2014" in kallsyms
    assert preempt.startswith(f"{path}: CONFIG_PREEMPT_NONE is not set, rule set legacy-2013 wants y (")
    assert "f86373f5b2" in preempt and "2012" in preempt

    strict = check_file(path, ALL_SETS, strict_legacy=True)
    assert [finding.level for finding in strict] == ["error", "error"]
    assert messages(strict) == [
        f"{path}: CONFIG_KALLSYMS is not set, rule set legacy-2013 wants y",
        f"{path}: CONFIG_PREEMPT_NONE is not set, rule set legacy-2013 wants y",
    ]


def test_user_rules(tmp_path):
    path = write(tmp_path, "x.config", with_values(FULL.read_text(), {
        "CONFIG_LOCALVERSION": '"-zfs"', "CONFIG_NR_CPUS": "0x40", "CONFIG_UDF_FS": "m"}))
    passing = {"CONFIG_LOCALVERSION": "-zfs", "NR_CPUS": 64, "UDF_FS": "m", "SQUASHFS": "y",
               "CONFIG_ZISOFS": "y/m", "CONFIG_DEBUG_INFO_BTF": "off", "CONFIG_HZ": "1000"}
    assert check_file(path, [], user_rules=passing) == []
    failing = {"LOCALVERSION": '""', "CONFIG_UDF_FS": "y", "CONFIG_SQUASHFS": "off",
               "CONFIG_NR_CPUS": "128", "CONFIG_NOT_IN_KERNEL": "y/m"}
    assert messages(check_file(path, [], user_rules=failing)) == [
        f'{path}: CONFIG_LOCALVERSION="-zfs", rule set user wants ""',
        f"{path}: CONFIG_UDF_FS=m, rule set user wants y",
        f"{path}: CONFIG_SQUASHFS=y, rule set user wants it off",
        f"{path}: CONFIG_NR_CPUS=0x40, rule set user wants 128",
        f"{path}: CONFIG_NOT_IN_KERNEL is absent, rule set user wants y or m",
    ]


@pytest.mark.parametrize("rules, complaint", [
    ({"CONFIG_SQUASHFS": True}, r"kernel rule CONFIG_SQUASHFS: wanted value True is not a string"),
    ({"CONFIG_SQUASHFS": None}, r"kernel rule CONFIG_SQUASHFS: wanted value None"),
    ({"SQUASHFS": "yes"}, r"kernel rule SQUASHFS: wanted value 'yes' is ambiguous"),
    ({"SQUASHFS": "Y"}, r"kernel rule SQUASHFS: wanted value 'Y' is ambiguous"),
    ({"CONFIG SQUASHFS": "y"}, r"kernel rule 'CONFIG SQUASHFS': not a kernel option name"),
    ({"SQUASHFS": "a\nb"}, r"kernel rule SQUASHFS: wanted value spans several lines"),
    (["SQUASHFS"], r"kernel rules: expected a mapping"),
])
def test_invalid_user_rules_name_the_key(rules, complaint):
    with pytest.raises(UserError, match=complaint):
        kconfig.check(kconfig.parse_config(""), [], user_rules=rules)


def test_unknown_rule_set_lists_known_ones():
    with pytest.raises(UserError) as error:
        kconfig.check(kconfig.parse_config(""), ["livecd", "zfs"])
    assert str(error.value) == ("unknown kernel rule set 'zfs'; known rule sets: openzfs, "
                                "gentoo-zfs, livecd, installer, legacy-2013")


def test_a_single_rule_set_name_as_string(tmp_path):
    path = write(tmp_path, "x.config", with_values(FULL.read_text(), {"CONFIG_MODULES": "n"}))
    assert messages(check_file(path, "openzfs")) == [
        f"{path}: CONFIG_MODULES is not set, rule set openzfs wants y"]


DEMO_TREE = Path(__file__).resolve().parent / "data" / "kconfig" / "tree"


def test_kconfig_index_follows_sources_and_blocks():
    index = kconfig.read_kconfig_index(DEMO_TREE)
    assert set(index.definitions) == {"X86", "ARCH_THING", "BLOCK", "DEMO_FS", "DEMO_FS_XZ",
                                      "DEMO_CACHE_SMALL", "DEMO_AFTER_IF", "ZLIB_DEFLATE",
                                      "CRYPTO_DEFLATE", "AFTER_HELP"}
    xz, = index.definitions["DEMO_FS_XZ"]
    assert xz.location == "fs/demo/Kconfig:6"
    assert xz.depends == ["BLOCK", "DEMO_FS", "X86 || COMPILE_TEST"]
    assert index.definitions["DEMO_CACHE_SMALL"][0].depends == ["BLOCK", "DEMO_FS", "DEMO_FS_XZ"]
    assert index.definitions["DEMO_AFTER_IF"][0].depends == ["BLOCK"]
    assert index.definitions["AFTER_HELP"][0].depends == ["CRYPTO_DEFLATE && BLOCK"]
    assert index.selectors == {"ARCH_THING": [("X86", "BLOCK")],
                               "ZLIB_DEFLATE": [("CRYPTO_DEFLATE", None)]}
    assert "ARCH_THING" not in kconfig.read_kconfig_index(DEMO_TREE, "arm64").definitions


@pytest.mark.parametrize("expression, expected", [
    ("A", 2), ("B", 1), ("C", 0), ("MISSING", 0), ("!B", 1), ("!C", 2),
    ("A && B", 1), ("B || A", 2), ("C || (A && !C)", 2), ("A && !(B || C)", 1),
    ('S = "abc"', 2), ('S != "abc"', 0), ("N > 32", 2), ("N < 0x10", 0), ("A = y", 2),
    ("B = y", 0), ("C = n", 2), ("MISSING = n", 2),
])
def test_expression_evaluation_is_tristate(expression, expected):
    values = {"CONFIG_A": "y", "CONFIG_B": "m", "CONFIG_C": "n", "CONFIG_S": '"abc"',
              "CONFIG_N": "64"}
    assert kconfig.evaluate(expression, values) == expected
