"""Spec files, catalyst.conf and catalystrc, rendered from config.yaml and the pins.

Templates are Jinja2 with StrictUndefined: a name the template uses but the config does not
provide is an error, not an empty value. Every rendered spec goes through the linter.
"""
from gentoo_zfs_livecd.catalyst import grammar
from gentoo_zfs_livecd.checkout import SPECS_DIR
from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.paths import STAGE_TARGETS, TEMPLATES
from gentoo_zfs_livecd.project import Build

PLACEHOLDER_SHA = "0" * 40
# What rendering reads: the specs (with the stage chain and the paths of its artifacts) ...
SPEC_SETTINGS = (
    "stages", "subarch", "rel_type", "profile", "livecd.profile", "compression_mode", "portage.stages_confdir",
    "portage.isos_confdir", "portage.prefix", "repos", "catalyst.jobs", "kernel.mode", "kernel.sources",
    "kernel.config", "kernel.packages", "kernel.dracut_args", "livecd.volid", "livecd.type", "livecd.bootargs",
    "livecd.use", "livecd.packages", "livecd.rcadd", "livecd.fsscript", "livecd.root_overlay", "livecd.overlay",
    "catalyst.binhost",
)
# ... and catalyst.conf with catalystrc.
CONF_SETTINGS = ("catalyst.pkgcache", "catalyst.kerncache", "catalyst.distdir", "catalyst.jobs",
                 "catalyst.load_average", "catalyst.binhost")


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
    }


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
        settings["binhost"] = build.get("catalyst.binhost")
    return "# Generated from config.yaml by gentoo-zfs-livecd; edit config.yaml instead.\n" + tomli_w.dumps(settings)


def catalystrc(build: Build) -> str:
    return ("# Generated from config.yaml by gentoo-zfs-livecd; sourced by Catalyst in the chroot.\n"
            f"export MAKEOPTS=\"-j{build.get('catalyst.jobs')}\"\n")

