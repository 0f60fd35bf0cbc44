"""What the project carries over from Gentoo's release engineering, and the settings that make
a real Catalyst 4.1 host do what config.yaml says.

The releng facts below are data written in this project: what gentoo/releng's amd64 install CD
has and this project relies on, read from gentoo/releng at RELENG_COMMIT
(releases/specs/amd64/installcd-stage{1,2-minimal}.spec, releases/portage/{isos,stages}).
A later edit that drops one of them fails here; specs/releng-differences.md lists what this
project deliberately does otherwise.
"""
import shutil
from pathlib import Path

import pytest
import yaml

from gentoo_zfs_livecd import config as config_module
from gentoo_zfs_livecd.catalyst import grammar, render, runner
from gentoo_zfs_livecd.checkout import ROOT
from gentoo_zfs_livecd.paths import Paths
from gentoo_zfs_livecd.project import Build

RELENG_COMMIT = "2542ea88a4a7627346e357eea330752ab071e796"

# installcd-stage1.spec livecd/packages this CD relies on (the rest: releng-differences.md).
RELENG_CD_PACKAGES = [
    "app-crypt/gnupg", "app-misc/livecd-tools", "net-misc/chrony", "net-misc/curl",
    "net-misc/dhcpcd", "net-misc/iputils", "net-misc/networkmanager", "net-misc/openssh",
    "net-misc/rsync", "net-misc/wget", "net-wireless/iw", "net-wireless/wpa_supplicant",
    "sys-apps/busybox", "sys-apps/gptfdisk", "sys-apps/iproute2", "sys-apps/pciutils",
    "sys-block/parted", "sys-boot/efibootmgr", "sys-boot/grub", "sys-fs/btrfs-progs",
    "sys-fs/cryptsetup", "sys-fs/dosfstools", "sys-fs/e2fsprogs", "sys-fs/lvm2", "sys-fs/mdadm",
    "sys-fs/ntfs3g", "sys-fs/xfsprogs", "sys-kernel/linux-firmware",
]
# installcd-stage2-minimal.spec boot/kernel/gentoo/dracut_args, in order.
RELENG_DRACUT_ARGS = (
    "--xz --no-hostonly -a dmsquash-live -a dmsquash-live-ntfs -a mdraid -o btrfs -o crypt "
    "-o i18n -o usrmount -o lunmask -o qemu -o qemu-net -o nvdimm -o multipath "
    "-i /lib/keymaps /lib/keymaps -I busybox").split()
RELENG_BOOTARGS = ["dokeymap", "nodhcp"]
RELENG_KERNEL = {"boot/kernel": "gentoo", "boot/kernel/gentoo/distkernel": "yes"}
# USE lines of releases/portage/isos/package.use the CD needs (flags as sets).
RELENG_ISO_USE = {
    "net-wireless/wpa_supplicant": {"dbus", "tkip", "wps"},
    "net-misc/networkmanager": {"-gtk-doc"},
    "sys-apps/busybox": {"-static"},
    "sys-fs/lvm2": {"thin"},
    "sys-auth/pambase": {"-passwdqc"},
    "*/*": {"lvm", "-filecaps"},
}
RELENG_ISO_KEYWORDS = ["app-misc/livecd-tools"]
# releases/portage/stages, for stage1's USE="-* build" and stage1's OpenMP-less compilers.
RELENG_STAGES_FORCE = {
    "app-alternatives/awk": {"gawk"}, "app-alternatives/bc": {"gnu"},
    "app-alternatives/bzip2": {"reference"}, "app-alternatives/cpio": {"gnu"},
    "app-alternatives/gzip": {"reference"}, "app-alternatives/lex": {"flex"},
    "app-alternatives/sh": {"bash"}, "app-alternatives/tar": {"gnu"},
    "app-alternatives/yacc": {"bison"}, "sys-libs/glibc": {"multiarch"},
}
RELENG_STAGES_USE = {
    "app-crypt/libb2": {"-openmp"}, "app-portage/portage-utils": {"-openmp"},
    "sys-devel/gettext": {"-openmp"}, "net-misc/curl": {"-http2", "-http3", "-quic", "-curl_quic_openssl"},
    "dev-libs/gmp": {"asm", "cpudetection"}, "*/*": {"-filecaps"},
}


def package_lines(folder: Path) -> dict:
    """{atom: set of tokens} over every file under `folder` (comments and blank lines skipped)."""
    tokens = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        for line in path.read_text().splitlines():
            words = line.split("#")[0].split()
            if words:
                tokens.setdefault(words[0], set()).update(words[1:])
    return tokens


def make_build(tmp_path: Path, **settings) -> Build:
    """A Build with the default settings and `settings` over them, outside the checkout."""
    raw = {}
    for key, value in settings.items():
        section, _, name = key.partition(".")
        if name:
            raw.setdefault(section, {})[name] = value
        else:
            raw[key] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = config_module.load(path, cache=tmp_path / "config.json")
    paths = Paths(build_dir=tmp_path / "build", storedir=tmp_path / "store", rel_type=config.get("rel_type"),
                  subarch=config.get("subarch"), version_stamp="20260101T000000Z", tarball_ext="tar.xz",
                  iso_name="install.iso", flavour="openrc", publish_dir=tmp_path / "publish")
    return Build(config, paths, False, "20260101")


def rendered(build: Build) -> dict:
    texts, problems = render.render_all(build, for_check=True)
    assert problems == []
    return {stage: grammar.parse(text, stage).values for stage, text in texts.items()}


def words(value) -> list:
    return value.split() if isinstance(value, str) else [w for item in value for w in item.split()]


# --- the releng facts ---------------------------------------------------------------------------

def test_cd_packages_keep_what_releng_installs(tmp_path):
    cd = rendered(make_build(tmp_path))["installcd-stage1"]
    assert sorted(set(RELENG_CD_PACKAGES) - set(words(cd["livecd/packages"]))) == []


def test_iso_spec_keeps_releng_boot_and_initramfs(tmp_path):
    iso = rendered(make_build(tmp_path))["iso"]
    assert words(iso["boot/kernel/gentoo/dracut_args"]) == RELENG_DRACUT_ARGS
    assert words(iso["livecd/bootargs"]) == RELENG_BOOTARGS
    for key, value in RELENG_KERNEL.items():
        assert iso[key] == value
    packages = words(iso["boot/kernel/gentoo/packages"])
    assert packages[:4] == ["--usepkg", "n", "--getbinpkg", "n"] and "sys-fs/zfs" in packages


def test_keymap_hook_has_what_it_needs(tmp_path):
    """dokeymap on the boot line needs livecd-tools' keymaps and busybox in the initramfs."""
    build = make_build(tmp_path)
    values = rendered(build)
    if "dokeymap" in words(values["iso"]["livecd/bootargs"]):
        args = " ".join(words(values["iso"]["boot/kernel/gentoo/dracut_args"]))
        assert "-i /lib/keymaps /lib/keymaps" in args and "-I busybox" in args
        assert "sys-apps/busybox" in words(values["installcd-stage1"]["livecd/packages"])


@pytest.mark.parametrize("confdir, expected", [
    ("isos/package.use", RELENG_ISO_USE),
    ("stages/package.use/releng", RELENG_STAGES_USE),
    ("stages/profile/package.use.force/releng", RELENG_STAGES_FORCE),
])
def test_confdirs_carry_releng_use_lines(confdir, expected):
    lines = package_lines(ROOT / "overlay" / "portage" / confdir)
    missing = {atom: flags - lines.get(atom, set()) for atom, flags in expected.items()}
    assert {atom: flags for atom, flags in missing.items() if flags} == {}


def test_livecd_tools_is_taken_from_testing_as_releng_does():
    keywords = package_lines(ROOT / "overlay" / "portage" / "isos" / "package.accept_keywords")
    assert sorted(set(RELENG_ISO_KEYWORDS) - set(keywords)) == []


def test_stage1_workarounds_are_removed_from_finished_stages():
    """Catalyst deletes <dir>/<portage_prefix> from a finished stage; the workarounds live there."""
    prefix = config_module.SCHEMA["portage.prefix"].default
    stages = ROOT / "overlay" / "portage" / "stages"
    for path in (p for p in stages.rglob("*") if p.is_file()):
        assert path.parent.name == prefix, path


def test_linux_firmware_is_not_asked_for_a_saved_list_it_does_not_get():
    """USE=savedconfig without a savedconfig file installs every blob (savedconfig.eclass)."""
    isos = ROOT / "overlay" / "portage" / "isos"
    asks = "savedconfig" in package_lines(isos / "package.use").get("sys-kernel/linux-firmware", set())
    assert asks == (isos / "savedconfig" / "sys-kernel" / "linux-firmware").is_file()


def test_firmware_mask_is_applied_through_package_env():
    """Portage takes INSTALL_MASK from package.env files, not from bashrc (portage(5))."""
    isos = ROOT / "overlay" / "portage" / "isos"
    env = package_lines(isos / "package.env")["sys-kernel/linux-firmware"]
    for name in env:
        text = (isos / "env" / name).read_text()
        assert 'INSTALL_MASK="${INSTALL_MASK}' in text and "/lib/firmware/amdgpu" in text


def test_default_stages_skip_stage2():
    assert config_module.SCHEMA["stages"].default == ["stage1", "stage3"]
    assert yaml.safe_load((ROOT / "config.yaml").read_text())["stages"] == ["stage1", "stage3"]


# --- settings that must reach Catalyst ----------------------------------------------------------

def test_binhost_is_written_for_every_stage(tmp_path):
    url = "https://binhost.example.org/releases/amd64/binpackages/23.0/x86-64/"
    build = make_build(tmp_path, **{"catalyst.binhost": url})
    conf = render.catalyst_conf(build)
    assert 'binhost = "https://binhost.example.org/"' in conf
    for stage, values in rendered(build).items():
        assert values["binrepo_path"] == "releases/amd64/binpackages/23.0/x86-64/", stage
        # Catalyst 4.1.1: sync-uri = binhost + binrepo_path.
        assert "https://binhost.example.org/" + values["binrepo_path"] == url


def test_no_binhost_no_binrepo_path(tmp_path):
    build = make_build(tmp_path)
    assert "\nbinhost = " not in render.catalyst_conf(build)
    assert all("binrepo_path" not in values for values in rendered(build).values())


def test_kernel_never_comes_from_a_binhost(tmp_path):
    rc = render.catalystrc(make_build(tmp_path))
    assert "--getbinpkg-exclude sys-kernel/gentoo-kernel" in rc


@pytest.mark.parametrize("load, expected", [(None, 'MAKEOPTS="-j3"'), (2.5, 'MAKEOPTS="-j3 -l2.5"')])
def test_catalystrc_keeps_the_load_limit(tmp_path, load, expected):
    rc = render.catalystrc(make_build(tmp_path, **{"catalyst.jobs": 3, "catalyst.load_average": load}))
    assert f"export {expected}\n" in rc


def test_kernel_config_edit_gives_the_iso_a_new_package_cache(tmp_path):
    fragment = tmp_path / "kernel.config"
    shutil.copy(ROOT / "kernel-configs" / "dist-livecd.config", fragment)
    build = make_build(tmp_path, **{"kernel.config": str(fragment)})
    before = rendered(build)
    first = Path(before["iso"]["pkgcache_path"])
    assert all("pkgcache_path" not in values for stage, values in before.items() if stage != "iso")
    assert first.parent == tmp_path / "store" / "packages" / build.get("rel_type")
    first.mkdir(parents=True)
    fragment.write_text(fragment.read_text() + "CONFIG_NVME_CORE=y\n")
    second = Path(rendered(build)["iso"]["pkgcache_path"])
    assert second != first
    assert render.stale_kernel_caches(build) == [first]
    second.mkdir()
    assert render.stale_kernel_caches(build) == [first]


def test_no_pkgcache_no_iso_package_cache(tmp_path):
    values = rendered(make_build(tmp_path, **{"catalyst.pkgcache": False}))
    assert "pkgcache_path" not in values["iso"]


@pytest.mark.parametrize("stage, resumed", [("stage1", True), ("stage3", True),
                                            ("installcd-stage1", True), ("iso", False)])
def test_only_stages_whose_resume_is_sound_resume(stage, resumed):
    failed = {"inputs": "same", "outcome": "failed"}
    assert runner.resumes(stage, failed, "same") is resumed
    assert runner.resumes(stage, failed, "other") is False
    assert runner.resumes(stage, {"inputs": "same", "outcome": "ok"}, "same") is False


# --- the kernel supports what the CD's tools are for ----------------------------------------------

def test_installer_rules_are_on_by_default():
    assert "installer" in config_module.SCHEMA["kernel.rules"].default
    assert "installer" in yaml.safe_load((ROOT / "config.yaml").read_text())["kernel"]["rules"]


@pytest.mark.parametrize("option", ["CONFIG_XFS_FS", "CONFIG_BTRFS_FS", "CONFIG_MD_RAID1",
                                    "CONFIG_CRYPTO_XTS", "CONFIG_DM_CRYPT"])
def test_installer_rules_refuse_a_kernel_without_what_the_tools_need(tmp_path, option):
    from gentoo_zfs_livecd.kernel import kconfig
    shipped = (ROOT / "kernel-configs" / "genkernel-amd64.config").read_text()
    assert kconfig.check(kconfig.parse_config(shipped), ["installer"]) == []
    broken = tmp_path / "broken.config"
    broken.write_text("\n".join(f"# {option} is not set" if line.startswith(option + "=") else line
                                for line in shipped.splitlines()) + "\n")
    problems = kconfig.check(kconfig.parse_config(broken.read_text()), ["installer"])
    assert any(option in str(problem) for problem in problems)


def test_installer_rules_refuse_werror():
    from gentoo_zfs_livecd.kernel import kconfig
    shipped = (ROOT / "kernel-configs" / "genkernel-amd64.config").read_text()
    problems = kconfig.check(kconfig.parse_config(shipped.replace("# CONFIG_WERROR is not set", "CONFIG_WERROR=y")), ["installer"])
    assert any("CONFIG_WERROR" in str(problem) for problem in problems)


def test_each_input_is_checked_against_the_key_that_signs_it():
    """gentoo-release.asc: the repository mirrors' key signs sync-repo commits, the release key
    signs stage3 listings and DIGESTS (sec-keys/openpgp-keys-gentoo-release, www.gentoo.org)."""
    schema = config_module.SCHEMA
    assert schema["snapshot.repo_url"].default.endswith("/repo/sync/gentoo.git")
    assert schema["snapshot.fingerprint"].default == "EF9538C9E8E64311A52CDEDFA13D0EF1914E7A72"
    assert schema["seed.fingerprint"].default == "13EBBDBEDE7A12775DFDB1BABB572E0E2D182910"
    shipped = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert shipped["snapshot"]["fingerprint"] == schema["snapshot.fingerprint"].default
    assert shipped["seed"]["fingerprint"] == schema["seed.fingerprint"].default
