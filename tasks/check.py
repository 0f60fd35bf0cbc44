"""`check`: everything that can be wrong before Catalyst runs, found in under a second."""
from pathlib import Path

from gentoo_zfs_livecd import checkout
from gentoo_zfs_livecd.catalyst.render import SPEC_SETTINGS
from gentoo_zfs_livecd.console import say
from gentoo_zfs_livecd.errors import UserError
from tasks.doit_glue import context
from tasks.doit_glue.actions import doit_action, settings_changed

__all__ = ["task_check", "task_kernel_deep_check"]

KERNEL_RULE_SETTINGS = ("kernel.config", "kernel.rules", "kernel.extra_rules", "kernel.mode", "kernel.strict_legacy")
CHECK_SETTINGS = tuple(dict.fromkeys(SPEC_SETTINGS + KERNEL_RULE_SETTINGS))
DEEP_CHECK_SETTINGS = ("kernel.config", "kernel.source_tree", "kernel.rules", "kernel.extra_rules",
                       "kernel.strict_legacy")


def kernel_findings(build) -> list:
    """Kernel-config rule findings (errors and obsolete-rule notes) for the configured kernel."""
    from gentoo_zfs_livecd.kernel import kconfig
    path = Path(build.get("kernel.config"))
    return kconfig.check(
        kconfig.read_config(path), build.get("kernel.rules"), build.get("kernel.extra_rules"),
        fragment=build.get("kernel.mode") == "dist", strict_legacy=build.get("kernel.strict_legacy"),
        source=str(path.relative_to(checkout.ROOT)) if path.is_relative_to(checkout.ROOT) else str(path))


@doit_action
def run_check(build) -> None:
    from gentoo_zfs_livecd.catalyst import render
    _, problems = render.render_all(build, for_check=True)
    for finding in kernel_findings(build):
        if finding.level == "error":
            problems.append(finding.message)
        else:
            say(f"   note: {finding.message}")
    if problems:
        raise UserError("\n".join(problems))


def task_check():
    """Check config, render and lint every spec, and check the kernel config (no Catalyst)."""
    build = context.current()
    templates = sorted(checkout.SPECS_DIR.glob("*.j2"))
    return {
        "actions": [(run_check, [build.declared(CHECK_SETTINGS)])],
        "file_dep": [Path(build.get("kernel.config")), *templates],
        "uptodate": [settings_changed(build, CHECK_SETTINGS)],
        "verbosity": 2,
    }


@doit_action
def run_deep_check(build) -> None:
    from gentoo_zfs_livecd.kernel import kconfig
    if not build.get("kernel.source_tree"):
        raise UserError("kernel-deep-check: config.yaml:kernel.source_tree is not set; point it at an "
                        "unpacked kernel source tree to run the kernel's own olddefconfig")
    findings = kconfig.deep_check(build.get("kernel.config"), build.get("kernel.source_tree"),
                                  build.get("kernel.rules"), build.get("kernel.extra_rules"),
                                  strict_legacy=build.get("kernel.strict_legacy"))
    problems = [finding.message for finding in findings if finding.level == "error"]
    if problems:
        raise UserError("\n".join(problems))
    say(f"   kernel-deep-check: every required option survives olddefconfig of {build.get('kernel.source_tree')}")


def task_kernel_deep_check():
    """Run the kernel tree's own olddefconfig on the kernel config (needs kernel.source_tree)."""
    build = context.current()
    # A returned task's `basename` is its name: the same `kernel-deep-check` in `doit list`,
    # on the command line and in README (a generator's would list as kernel_deep_check).
    return {
        "basename": "kernel-deep-check",
        "actions": [(run_deep_check, [build.declared(DEEP_CHECK_SETTINGS)])],
        "file_dep": [Path(build.get("kernel.config"))],
        "uptodate": [settings_changed(build, DEEP_CHECK_SETTINGS)],
        "task_dep": ["check"],
        "verbosity": 2,
    }
