"""A throw-away copy of the project with a config of its own, driven through the real `doit`."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILES = ["dodo.py", "pyproject.toml", "config.yaml", "gentoo_zfs_livecd_launcher.py", "gentoo_zfs_livecd", "tasks", "specs", "kernel-configs", "overlay"]


class Project:
    """The project copied to `where`, with storedir, seed and snapshot of its own."""

    def __init__(self, where: Path, **settings):
        self.root = where / "project"
        self.root.mkdir(parents=True)
        for name in PROJECT_FILES:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, self.root / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, self.root / name)
        sys.path.insert(0, str(ROOT))
        from gentoo_zfs_livecd.rehearsal import emulator
        self.upstream = emulator.portage_upstream(where / "upstream.git")
        self.sha = subprocess.run(["git", "-C", str(self.upstream), "rev-parse", "stable"],
                                  capture_output=True, text=True, check=True).stdout.strip()
        self.seed = emulator.make_seed(where / "seeds" / "stage3-amd64-openrc-20260101T000000Z.tar.xz")
        self.record = where / "catalyst-calls.jsonl"
        self.store = where / "store"
        self.settings = {
            "storedir": str(self.store),
            "snapshot": {"treeish": self.sha, "repo_url": str(self.upstream)},
            "seed": {"file": str(self.seed)},
            "catalyst": {"command": [sys.executable, str(ROOT / "tests" / "instrumented_catalyst.py")]},
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

    def doit(self, *args, fault=None, check=False, **popen):
        """Run `python -m doit` in the copy; returns the CompletedProcess (text)."""
        env = dict(os.environ, CATALYST_RECORD=str(self.record), CATALYST_FAULT=fault or "")
        env.pop("PYTHONPATH", None)
        result = subprocess.run([sys.executable, "-m", "doit", *args], cwd=self.root, env=env,
                                capture_output=True, text=True, timeout=300, **popen)
        if check and result.returncode != 0:
            raise AssertionError(f"doit {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

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
