"""The HTML report: page, plots, relative references, escaping, and a real browser's view."""
import dataclasses
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.nightly import history, report
from gentoo_zfs_livecd.nightly.history import RunRecord, TaskRun
from tests.support import require

CHROMIUM = "/usr/bin/chromium"
STAGES = ["check", "snapshot", "seed", "stage1", "stage3", "installcd-stage1", "iso"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def nightly(day, failed=None, skipped=(), iso_mib=980):
    """A run on 2026-08-<day>: each stage ran (longer each day), unless skipped or failed."""
    tasks, reached_failure = [], False
    for n, name in enumerate(STAGES):
        if reached_failure:
            tasks.append(TaskRun(name, "not-run"))
        elif name == failed:
            tasks.append(TaskRun(name, "failed", 60.0))
            reached_failure = True
        elif name in skipped:
            tasks.append(TaskRun(name, "skipped", 0.01))
        else:
            tasks.append(TaskRun(name, "ran", 60.0 * (n + 1) * (10 + day)))
    iso = None if failed else f"install-amd64-zfs-202608{day:02d}T000000Z.iso"
    return RunRecord(start=f"2026-08-{day:02d}T02:00:00+00:00", end=f"2026-08-{day:02d}T06:30:15+00:00",
                     outcome="failed" if failed else "succeeded", tasks=tasks, failed_task=failed,
                     iso_name=iso, artifacts={iso: iso_mib * 1024 * 1024 + day} if iso else {},
                     versions={"kernel": f"6.12.{40 + day}-gentoo-dist", "zfs": "2.3.4"},
                     log_path=f"build/config/logs/202608{day:02d}T020000Z/nightly.log")


def several_runs():
    return [nightly(1), nightly(2, iso_mib=990), nightly(3, failed="stage3"),
            nightly(4, skipped=("snapshot", "seed")), nightly(5, iso_mib=1010), nightly(6, iso_mib=1024)]


class Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def image_sources(page: Path) -> list[str]:
    parser = Images()
    parser.feed(page.read_text())
    return parser.sources


def test_report_has_last_run_history_and_both_plots(tmp_path):
    path = tmp_path / "history.jsonl"
    for record in several_runs():
        history.append(path, record)
    out = tmp_path / "report"

    page = report.render_report(path, out)

    assert page == out / "index.html"
    assert sorted(p.name for p in out.iterdir()) == ["durations.png", "index.html", "iso-size.png"]
    sources = image_sources(page)
    assert sorted(sources) == ["durations.png", "iso-size.png"]
    for source in sources:
        assert not urlsplit(source).scheme and not source.startswith("/")
        data = (out / source).read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert len(data) > 10_000
    html = page.read_text()
    assert "install-amd64-zfs-20260806T000000Z.iso" in html
    assert "1.00 GiB" in html                       # the last ISO's size
    assert "6.12.46-gentoo-dist" in html            # the last kernel
    assert "4 h 30 min" in html                      # the last run's length
    assert html.count('<td class="failed">failed</td>') == 1  # run 3 in the history table
    assert "History (6 runs, newest first)" in html
    assert html.index("2026-08-06T02:00:00") < html.index("2026-08-01T02:00:00")


def test_last_run_tasks_show_ran_and_skipped(tmp_path):
    runs = several_runs()[:4]

    html = report.render_report(runs, tmp_path).read_text()

    last_run = html[html.index("<h3>Tasks</h3>"):html.index("<h2>Over time</h2>")]
    assert '<tr><td><code>seed</code></td><td class="skipped">skipped</td><td class="num">–</td></tr>' in last_run
    assert '<tr><td><code>iso</code></td><td class="ran">ran</td><td class="num">1 h 38 min</td></tr>' in last_run


def test_durations_plot_has_one_line_per_task_that_ran():
    runs = several_runs()
    fig = report.durations_figure(runs)

    [ax] = fig.axes
    assert [line.get_label() for line in ax.lines] == STAGES
    stage3 = ax.lines[STAGES.index("stage3")]
    assert len(stage3.get_xdata()) == 5   # it failed on day 3
    snapshot = ax.lines[STAGES.index("snapshot")]
    assert len(snapshot.get_xdata()) == 5  # skipped on day 4


def test_iso_size_plot_skips_runs_without_iso():
    [ax] = report.iso_size_figure(several_runs()).axes
    [line] = ax.lines
    assert [round(y) for y in line.get_ydata()] == [980, 990, 980, 1010, 1024]


def test_report_of_failures_only_still_has_both_images(tmp_path):
    page = report.render_report([nightly(1, failed="check")], tmp_path)

    for source in image_sources(page):
        assert (tmp_path / source).read_bytes().startswith(PNG_MAGIC)
    assert '<td class="failed">failed</td>' in page.read_text()


def test_page_escapes_what_the_history_holds(tmp_path):
    record = nightly(1, failed="<script>alert(1)</script>")
    record.versions["zfs"] = '2.3.4" onmouseover="x'

    html = report.render_report([record], tmp_path).read_text()

    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '2.3.4&#34; onmouseover=&#34;x' in html


def test_empty_history_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"history file .*history.jsonl holds no runs"):
        report.render_report(tmp_path / "history.jsonl", tmp_path / "out")


def plot_coloured_pixels(page: Path, tmp_path: Path) -> int:
    """Screenshot `page` in headless Chromium; count pixels of the plots' first line colour
    (matplotlib's tab:blue, #1f77b4), which nothing but the images draws."""
    from matplotlib.image import imread
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}",
                    "--window-size=1280,2400", "--hide-scrollbars", f"--screenshot={shot}",
                    page.as_uri()], check=True, capture_output=True, timeout=120)
    assert shot.read_bytes().startswith(PNG_MAGIC)
    pixels = (imread(shot)[:, :, :3] * 255).round()
    return int((np.abs(pixels - [31, 119, 180]).max(axis=2) <= 8).sum())


@pytest.fixture
def chromium():
    require(Path(CHROMIUM).exists(), f"{CHROMIUM} is not installed", "apt-get install chromium")


def test_page_renders_offline_in_headless_chromium(tmp_path, chromium):
    page = report.render_report(several_runs(), tmp_path / "report")

    assert plot_coloured_pixels(page, tmp_path) > 500


def test_chromium_check_sees_missing_images(tmp_path, chromium):
    """The check above can fail: without its images the page shows no plot colour."""
    page = report.render_report(several_runs(), tmp_path / "report")
    for source in image_sources(page):
        (page.parent / source).unlink()

    assert plot_coloured_pixels(page, tmp_path) == 0


def test_a_rehearsals_report_says_so(tmp_path):
    runs = several_runs()
    assert "Rehearsal" not in report.render_report(runs, tmp_path / "real").read_text()
    rehearsed = [dataclasses.replace(run, rehearsal=True) for run in runs]
    page = report.render_report(rehearsed, tmp_path / "rehearsal").read_text()
    assert "Rehearsal: these runs used the Catalyst emulator" in page
