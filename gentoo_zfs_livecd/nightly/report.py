"""An HTML page about the nightly builds: the last run, the history, and two plots.

The page and its images sit in one folder and refer to each other relatively, so the folder
can be copied anywhere and viewed offline.
"""
import io
from datetime import datetime
from pathlib import Path

from gentoo_zfs_livecd import atomic
from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.nightly.history import RunRecord, load

TEMPLATES = Path(__file__).with_name("templates")
PAGE = "index.html"
DURATIONS_PLOT = "durations.png"
ISO_SIZE_PLOT = "iso-size.png"
MIB = 1024 * 1024


def render_report(history, out_dir) -> Path:
    """Write index.html and its plots into `out_dir`; return the page's path.

    `history` is the history file's path or a list of RunRecord, oldest first.
    Raises UserError when there is no run to report.
    """
    if isinstance(history, list):
        records, source = history, "the run history"
    else:
        records, source = load(history), f"history file {history}"
    if not records:
        raise UserError(f"report: no build history yet ({source} holds no runs); "
                        "run `doit nightly` or gentoo-zfs-livecd-nightly first")
    out_dir = Path(out_dir)
    # images first, so the page never names an image that is not there yet
    atomic.write_bytes(out_dir / DURATIONS_PLOT, png(durations_figure(records)))
    atomic.write_bytes(out_dir / ISO_SIZE_PLOT, png(iso_size_figure(records)))
    page = out_dir / PAGE
    atomic.write_text(page, render_page(records))
    return page


def render_page(records: list[RunRecord]) -> str:
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["duration"] = format_duration
    env.filters["size"] = format_size
    return env.get_template("report.html.j2").render(
        last=records[-1], runs=list(reversed(records)), run_seconds=run_seconds,
        durations_plot=DURATIONS_PLOT, iso_size_plot=ISO_SIZE_PLOT)


def durations_figure(records: list[RunRecord]):
    """Minutes of each task over time, one line per task, from runs where it ran."""
    fig, ax = new_plot("Task durations", "minutes")
    for name in task_names(records):
        points = [(when, task.seconds / 60) for record in records
                  if (when := parse_time(record.start)) and (task := record.task(name))
                  and task.status == "ran"]
        if points:
            ax.plot(*zip(*points), marker="o", markersize=4, label=name)
    if ax.lines:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    else:
        ax.text(0.5, 0.5, "no task has run yet", ha="center", transform=ax.transAxes)
    return fig


def iso_size_figure(records: list[RunRecord]):
    """Size of each run's ISO over time."""
    fig, ax = new_plot("ISO size", "MiB")
    points = [(when, record.iso_size / MIB) for record in records
              if (when := parse_time(record.start)) and record.iso_size is not None]
    if points:
        ax.plot(*zip(*points), marker="o", markersize=4)
    else:
        ax.text(0.5, 0.5, "no ISO built yet", ha="center", transform=ax.transAxes)
    return fig


def new_plot(title: str, unit: str):
    from matplotlib import colormaps, cycler
    from matplotlib.figure import Figure
    fig = Figure(figsize=(10, 4.5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    # ten colours, then the same ten dashed: a task graph has more than ten tasks
    ax.set_prop_cycle(cycler(linestyle=["-", "--"]) * cycler(color=colormaps["tab10"].colors))
    ax.set_title(title)
    ax.set_ylabel(unit)
    ax.grid(True, alpha=0.3)
    return fig, ax


def png(fig) -> bytes:
    """Render with Agg directly: no pyplot, so no global backend state and no display needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    fig.autofmt_xdate()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def task_names(records: list[RunRecord]) -> list[str]:
    """Every task name in the history, in the order tasks first appeared."""
    return list(dict.fromkeys(task.name for record in records for task in record.tasks))


def parse_time(text) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None


def run_seconds(record: RunRecord) -> float | None:
    start, end = parse_time(record.start), parse_time(record.end)
    try:
        return (end - start).total_seconds()
    except TypeError:  # a side missing, or one naive and one aware
        return None


def format_duration(seconds) -> str:
    if seconds is None:
        return "–"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def format_size(size) -> str:
    if size is None:
        return "–"
    if size >= 1024 * MIB:
        return f"{size / (1024 * MIB):.2f} GiB"
    return f"{size / MIB:.1f} MiB"
