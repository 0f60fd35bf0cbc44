"""A local stand-in for gentoo.git: a repository with commits signed by real test keys."""
import os
import subprocess
from pathlib import Path

from tests.support.gpgtestkeys import make_key


class Upstream:
    """A non-bare repository with a `stable` branch, standing in for gentoo.git."""

    def __init__(self, root: Path):
        self.keys_home = root / "signer"
        self.primary, self.subkey, public = make_key(self.keys_home)
        self.other_home = root / "other"
        self.other_primary, self.other_subkey, other_public = make_key(
            self.other_home, "Other Key", "other@example.org")
        self.keyring = root / "release.asc"
        self.keyring.write_bytes(public)
        self.both_keyring = root / "both.asc"
        self.both_keyring.write_bytes(public + other_public)
        self.work = root / "upstream"
        self.work.mkdir()
        self.url = self.work.as_uri()
        self.git("init", "--quiet", "--initial-branch=stable")
        self.count = 0

    def git(self, *args, home=None, env=None):
        command = ["git", "-C", str(self.work), "-c", "user.name=Release", "-c", "user.email=releng@example.org",
                   "-c", "gpg.program=gpg", *args]
        environment = {**os.environ, "GNUPGHOME": str(home or self.keys_home), **(env or {})}
        return subprocess.run(command, check=True, capture_output=True, text=True, env=environment).stdout.strip()

    def commit(self, sign="release", date=None) -> str:
        """A new commit on stable: signed by the release subkey, by `other`, or unsigned (None)."""
        self.count += 1
        (self.work / "file").write_text(f"change {self.count}\n")
        self.git("add", "file")
        signing = {"release": ["-S" + self.subkey + "!"], "other": ["-S" + self.other_subkey + "!"], None: []}[sign]
        home = self.other_home if sign == "other" else self.keys_home
        env = {"GIT_COMMITTER_DATE": date, "GIT_AUTHOR_DATE": date} if date else {}
        self.git("commit", "--quiet", "--no-gpg-sign", *signing, "-m", f"change {self.count}", home=home, env=env)
        return self.git("rev-parse", "HEAD")

    def close(self):
        for home in (self.keys_home, self.other_home):
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)
