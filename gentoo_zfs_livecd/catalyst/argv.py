"""Catalyst's command lines, built in this one place (Catalyst 4.1's options: catalyst/main.py)."""
from typing import NamedTuple


class CatalystArgv(NamedTuple):
    """`command` is how Catalyst is started (`catalyst.command`), `conf` its catalyst.conf."""

    command: tuple
    conf: str

    def build(self, spec, clear_autoresume: bool) -> list:
        """One stage; `-a` clears its autoresume points, so it starts over."""
        return [*self.command, "-c", self.conf, *(["-a"] if clear_autoresume else []), "-f", str(spec)]

    def snapshot(self, sha: str) -> list:
        """Archive gentoo.git at `sha` into `<storedir>/snapshots/gentoo-<sha>.sqfs`."""
        return [*self.command, "-c", self.conf, "-s", sha]

    def purge_tmp(self, spec) -> list:
        """Remove the stage's work folder under `<storedir>/tmp/` (its chroot)."""
        return [*self.command, "-c", self.conf, "-T", "-f", str(spec)]

    def version(self) -> list:
        return [*self.command, "--version"]

    def usage(self) -> list:
        return [*self.command, "--help"]
