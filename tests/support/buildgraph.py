"""A throw-away copy of the project with a config of its own, driven through the real `doit`."""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from gentoo_zfs_livecd.rehearsal import emulator
from tests.support import CHECKOUT

INSTRUMENTED_CATALYST = Path(__file__).resolve().parent / "instrumented_catalyst.py"
PROJECT_FILES = ["dodo.py", "pyproject.toml", "config.yaml", "gentoo_zfs_livecd_launcher.py", "gentoo_zfs_livecd", "tasks", "specs", "kernel-configs", "overlay"]


class Project:
    """The project copied to `where`, with storedir, seed and snapshot of its own."""

    def __init__(self, where: Path, **settings):
        self.root = where / "project"
        self.root.mkdir(parents=True)
        for name in PROJECT_FILES:
            source = CHECKOUT / name
            if source.is_dir():
                shutil.copytree(source, self.root / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, self.root / name)
        self.upstream = emulator.portage_upstream(where / "upstream.git")
        self.sha = subprocess.run(["git", "-C", str(self.upstream), "rev-parse", "stable"],
                                  capture_output=True, text=True, check=True).stdout.strip()
        self.seed = emulator.make_seed(where / "seeds" / "stage3-amd64-openrc-20260101T000000Z.tar.xz")
        self.record = where / "catalyst-calls.jsonl"
        self.hanging = where / "catalyst-hanging.pids"
        self.store = where / "store"
        self.settings = {
            "storedir": str(self.store),
            # Every stage task, the optional stage2 included, so the graph tests cover it too.
            "stages": ["stage1", "stage2", "stage3"],
            "snapshot": {"treeish": self.sha, "repo_url": str(self.upstream)},
            "seed": {"file": str(self.seed)},
            "catalyst": {"command": [sys.executable, str(INSTRUMENTED_CATALYST)]},
            "publish": {"dir": str(where / "publish")},
            "boottest": {"enabled": "false"},
        }
        self.configure(**settings)

    def new_commit(self, date: str) -> str:
        """A commit on top of the pinned one in the upstream repository, dated `date` (UTC)."""
        people = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                  "GIT_COMMITTER_EMAIL": "t@t", "GIT_COMMITTER_DATE": date, "GIT_AUTHOR_DATE": date}
        return subprocess.run(["git", "-C", str(self.upstream), "commit-tree", "-p", self.sha, "-m", "next",
                               f"{self.sha}^{{tree}}"], capture_output=True, text=True, check=True,
                              env=dict(os.environ, **people)).stdout.strip()

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    def configure(self, **settings):
        """Merge `settings` (nested dicts) into the test config and write it."""
        def merge(into, values):
            for key, value in values.items():
                if isinstance(value, dict) and isinstance(into.get(key), dict):
                    merge(into[key], value)
                else:
                    into[key] = value
        merge(self.settings, settings)
        self.config.write_text(yaml.safe_dump(self.settings))

    def environment(self, fault=None) -> dict:
        """The environment for `doit` in the copy: the instrumented Catalyst's record, pid file
        and `fault`; no PYTHONPATH, so the copy runs from its own folder."""
        env = dict(os.environ, CATALYST_RECORD=str(self.record), CATALYST_HANGING=str(self.hanging),
                   CATALYST_FAULT=fault or "")
        env.pop("PYTHONPATH", None)
        return env

    def doit(self, *args, fault=None, check=False, **popen):
        """Run `python -m doit` in the copy; returns the CompletedProcess (text)."""
        result = subprocess.run([sys.executable, "-m", "doit", *args], cwd=self.root, env=self.environment(fault),
                                capture_output=True, text=True, timeout=300, check=False, **popen)
        if check and result.returncode != 0:
            raise AssertionError(f"doit {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def stop_hanging_catalysts(self) -> list:
        """Kill what the `hang` fault left running; the pids that were still alive. Catalyst runs
        in a session of its own, so killing doit (or its process group) leaves it sleeping, as
        it would leave a real hung Catalyst."""
        if not self.hanging.exists():
            return []
        killed = []
        for pid in map(int, self.hanging.read_text().split()):
            try:
                if INSTRUMENTED_CATALYST.name in Path(f"/proc/{pid}/cmdline").read_text():
                    os.killpg(pid, signal.SIGKILL)
                    killed.append(pid)
            except (FileNotFoundError, ProcessLookupError):
                pass  # it has ended
        self.hanging.unlink()
        return killed

    def argv(self, _result=None) -> list:
        """(spec stem or "snapshot", argv) of each Catalyst build since the last look
        (purges with -T and --version queries are not builds)."""
        if not self.record.exists():
            return []
        lines = self.record.read_text().splitlines()
        self.record.unlink()
        builds = [argv for argv in map(json.loads, lines) if "-T" not in argv and "--version" not in argv]
        return [(Path(argv[argv.index("-f") + 1]).stem if "-f" in argv else "snapshot", argv)
                for argv in builds]

    def calls(self) -> list:
        """Catalyst runs since the last look: the spec stem, or "snapshot" for `-s`."""
        return [stem for stem, _ in self.argv()]

    def build(self, *args):
        """`doit` that must succeed; the list of Catalyst runs it made."""
        self.doit(*args, check=True)
        return self.calls()

    @property
    def build_dir(self) -> Path:
        return self.root / "build" / "config"

    def artifacts(self) -> list:
        return sorted(p for p in (self.store / "builds").rglob("*") if p.is_file())
