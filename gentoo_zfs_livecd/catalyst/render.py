"""Spec files, catalyst.conf and catalystrc, rendered from config.yaml and the pins.

Templates are Jinja2 with StrictUndefined: a name the template uses but the config does not
provide is an error, not an empty value. Every rendered spec goes through the linter.
"""
import hashlib
from pathlib import Path
from urllib.parse import urlsplit

from gentoo_zfs_livecd.catalyst import grammar
from gentoo_zfs_livecd.checkout import SPECS_DIR
from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.paths import STAGE_TARGETS, TEMPLATES
from gentoo_zfs_livecd.project import Build

PLACEHOLDER_SHA = "0" * 40
# Catalyst 4.1.1 kmerge.sh merges sys-kernel/gentoo-kernel with pkgcache's --usepkg, and the
# config fragment in /etc/kernel/config.d is no part of a binary package's identity; so the ISO
# stage gets a package cache of its own for each kernel config (<storedir>/packages/...).
KERNEL_CACHE_INFIX = "-kconfig-"
# A dist kernel from a binhost was built with Gentoo's config, not this project's fragment.
DIST_KERNEL = "sys-kernel/gentoo-kernel"
# What rendering reads: the specs (with the stage chain and the paths of its artifacts) ...
SPEC_SETTINGS = (
    "stages", "subarch", "rel_type", "profile", "livecd.profile", "compression_mode", "portage.stages_confdir",
    "portage.isos_confdir", "portage.prefix", "repos", "catalyst.jobs", "kernel.mode", "kernel.sources",
    "kernel.config", "kernel.packages", "kernel.dracut_args", "livecd.volid", "livecd.type", "livecd.bootargs",
    "livecd.use", "livecd.packages", "livecd.rcadd", "livecd.fsscript", "livecd.root_overlay", "livecd.overlay",
    "catalyst.binhost", "catalyst.pkgcache", "storedir",
)
# ... and catalyst.conf with catalystrc.
CONF_SETTINGS = ("catalyst.pkgcache", "catalyst.kerncache", "catalyst.distdir", "catalyst.jobs",
                 "catalyst.load_average", "catalyst.binhost", "kernel.mode")


def stage_values(build: Build, pin: dict) -> dict:
    """What differs per stage: the snapshot it is built from and the stamp its artifacts carry
    (its stage pin: `snapshot`, `stamp`, `datestamp`). Reads `livecd.iso` and `livecd.volid`."""
    from gentoo_zfs_livecd.config import expand
    return {
        "snapshot_treeish": pin["snapshot"],
        "version_stamp": pin["stamp"],
        "livecd_iso": expand(build.get("livecd.iso"), pin["stamp"], pin["datestamp"]),
        "livecd_volid": expand(build.get("livecd.volid"), pin["stamp"], pin["datestamp"]),
    }


def source_subpath(build: Build, stage: str) -> str:
    before = build.previous(stage)
    return build.paths.subpath(before) if before else build.paths.seed_subpath


def spec_list(key: str, values) -> str:
    """A multi-value spec key; tokens with ':' go on the key line, where Catalyst allows them."""
    values = [values] if isinstance(values, str) else list(values or [])
    if not values:
        return ""
    on_key_line = [v for v in values if ":" in v]
    rest = [v for v in values if ":" not in v]
    head = f"{key}: {' '.join(on_key_line)}".rstrip()
    return "\n".join([head] + [f"\t{v}" for v in rest])


def template_context(build: Build, for_check: bool = False) -> dict:
    """Values the templates see. `for_check`: source confdirs and placeholders for missing pins."""
    snapshot = build.snapshot_pin
    if snapshot is None and not for_check:
        raise UserError(f"{build.paths.pin('snapshot')}: no snapshot pin yet; run `doit snapshot`")
    paths = build.paths
    confdir = (lambda name: build.get(f"portage.{name}_confdir")) if for_check \
        else (lambda name: str(paths.confdir(name)))
    return {
        "subarch": build.get("subarch"),
        "rel_type": build.get("rel_type"),
        "profile": build.get("profile"),
        "livecd_profile": build.get("livecd.profile"),
        "version_stamp": paths.version_stamp,
        "snapshot_treeish": snapshot["sha"] if snapshot else PLACEHOLDER_SHA,
        "compression_mode": build.get("compression_mode"),
        "stages_confdir": confdir("stages"),
        "isos_confdir": confdir("isos"),
        "portage_prefix": build.get("portage.prefix"),
        "repos": build.get("repos"),
        "jobs": build.get("catalyst.jobs"),
        "kernel_mode": build.get("kernel.mode"),
        "kernel_sources": build.get("kernel.sources") or "",
        "kernel_config": build.get("kernel.config"),
        "kernel_packages": build.get("kernel.packages"),
        "dracut_args": build.get("kernel.dracut_args"),
        "livecd_iso": paths.iso_name,
        "livecd_volid": build.expand("livecd.volid"),
        "livecd_type": build.get("livecd.type"),
        "livecd_bootargs": build.get("livecd.bootargs"),
        "livecd_use": build.get("livecd.use"),
        "livecd_packages": build.get("livecd.packages"),
        "livecd_rcadd": build.get("livecd.rcadd"),
        "livecd_fsscript": build.get("livecd.fsscript"),
        "livecd_root_overlay": build.get("livecd.root_overlay"),
        "livecd_overlay": build.get("livecd.overlay"),
        "binrepo_path": binhost_split(build.get("catalyst.binhost"))[1],
        "iso_pkgcache_path": str(iso_pkgcache(build)) if build.get("catalyst.pkgcache") else "",
    }


def binhost_split(url: str | None) -> tuple[str, str]:
    """(catalyst.conf `binhost`, spec `binrepo_path`) for a binary package repository URL.

    Catalyst 4.1.1 writes binrepos.conf only when both are set, with sync-uri = binhost +
    binrepo_path (stagebase.write_binrepos_conf), so the URL is cut after its host."""
    if not url:
        return "", ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/", parts.path.lstrip("/")


def kernel_config_digest(build: Build) -> str:
    return hashlib.sha256(Path(build.get("kernel.config")).read_bytes()).hexdigest()[:16]


def iso_pkgcache(build: Build) -> Path:
    """The ISO stage's binary package cache, one per kernel config."""
    return kernel_caches_dir(build) / (kernel_cache_prefix(build) + kernel_config_digest(build))


def kernel_caches_dir(build: Build) -> Path:
    return build.paths.storedir / "packages" / build.get("rel_type")


def kernel_cache_prefix(build: Build) -> str:
    return f"{build.paths.unversioned('iso')}{KERNEL_CACHE_INFIX}"


def stale_kernel_caches(build: Build) -> list:
    """The ISO stage's package caches made for kernel configs other than the current one."""
    folder, current = kernel_caches_dir(build), iso_pkgcache(build)
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.glob(kernel_cache_prefix(build) + "*")
                  if path.is_dir() and path != current)


def _environment():
    import jinja2
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(SPECS_DIR)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals["spec_list"] = spec_list
    return env


def render_spec(build: Build, stage: str, context: dict) -> str:
    """The spec text of one stage task; template errors are one line naming the template."""
    import jinja2
    name = TEMPLATES[stage]
    values = dict(context, source_subpath=source_subpath(build, stage))
    try:
        text = _environment().get_template(name).render(values)
    except jinja2.TemplateError as err:
        line = getattr(err, "lineno", None)
        where = f"specs/{name}" + (f":{line}" if line else "")
        raise UserError(f"{where}: {err.message if hasattr(err, 'message') else err}; fix the template")
    # Blank lines left by empty optional keys carry no meaning for Catalyst; drop runs of them.
    lines = [line for line in text.splitlines()]
    compact = [line for i, line in enumerate(lines) if line.strip() or (i and lines[i - 1].strip())]
    return "\n".join(compact).strip() + "\n"


def check_target(stage: str, text: str, source: str) -> list:
    """Lint problems, keys the template does not write (a value that smuggled in a line break),
    and a template whose `target` is not the stage's Catalyst target."""
    problems = grammar.lint(text, source)
    written = grammar.template_keys((SPECS_DIR / TEMPLATES[stage]).read_text())
    for key in sorted(set(grammar.parse(text, source).lines) - written):
        problems.append(f"{source}: key {key!r} is not one the template writes: a value carries a "
                        "line break or ':'; check the values from config.yaml")
    target = grammar.parse(text, source).values.get("target")
    if target != STAGE_TARGETS[stage]:
        problems.append(f"{source}: target: {target!r}, but this template is for {STAGE_TARGETS[stage]}")
    return problems


def render_all(build: Build, for_check: bool = False, stage_pins: dict | None = None) -> tuple[dict, list]:
    """({stage: spec text}, problems) for every stage task of the build; `stage_pins`: what each
    stage is built from ({stage: pin}), else every stage from the snapshot pin."""
    context = template_context(build, for_check)
    texts, problems = {}, []
    for stage in build.chain():
        pin = (stage_pins or {}).get(stage)
        try:
            text = render_spec(build, stage, dict(context, **stage_values(build, pin)) if pin else context)
        except UserError as err:
            problems.append(str(err))
            continue
        source = f"specs/{TEMPLATES[stage]} -> {build.paths.spec(stage).name}"
        problems += check_target(stage, text, source)
        texts[stage] = text
    return texts, problems


def catalyst_conf(build: Build) -> str:
    """catalyst.conf (TOML). No `digests` (the project writes them) and no `seedcache`
    (doit owns dependency tracking); `options` is always present, as Catalyst needs."""
    import tomli_w
    options = ["autoresume", "bindist"]
    options += [name for name in ("kerncache", "pkgcache") if build.get(f"catalyst.{name}")]
    settings = {
        "storedir": str(build.paths.storedir),
        "distdir": build.get("catalyst.distdir"),
        "envscript": str(build.paths.catalystrc),
        "jobs": build.get("catalyst.jobs"),
        "options": sorted(options),
    }
    if build.get("catalyst.load_average") is not None:
        settings["load-average"] = build.get("catalyst.load_average")
    if build.get("catalyst.binhost"):
        settings["binhost"] = binhost_split(build.get("catalyst.binhost"))[0]
    return "# Generated from config.yaml by gentoo-zfs-livecd; edit config.yaml instead.\n" + tomli_w.dumps(settings)


def catalystrc(build: Build) -> str:
    """Sourced after Catalyst set MAKEOPTS from jobs and load-average (4.1.1 setup_environment),
    so it repeats both; in dist mode no binhost may supply the kernel."""
    makeopts = f"-j{build.get('catalyst.jobs')}"
    if build.get("catalyst.load_average") is not None:
        makeopts += f" -l{build.get('catalyst.load_average')}"
    lines = ["# Generated from config.yaml by gentoo-zfs-livecd; sourced by Catalyst in the chroot.",
             f'export MAKEOPTS="{makeopts}"']
    if build.get("kernel.mode") == "dist":
        lines.append(f'export EMERGE_DEFAULT_OPTS="${{EMERGE_DEFAULT_OPTS}} --getbinpkg-exclude {DIST_KERNEL}"')
    return "\n".join(lines) + "\n"

