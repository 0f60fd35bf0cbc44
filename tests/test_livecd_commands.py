"""Every command the CD's self-test runs is one the live CD provides (overlay/livecd-commands.txt)."""
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COMMANDS_FILE = REPO / "overlay/livecd-commands.txt"
SELFTEST_SCRIPT = REPO / "overlay/root_overlay/etc/local.d/zfs-selftest.start"
ISO_SPEC = REPO / "specs/installcd-stage2-minimal.spec.j2"

_SEPARATOR = re.compile(r"\$\(|[()`;|&]+")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_REDIRECTION = re.compile(r"\d*[<>]+(&\d+|\s*[^\s;|&()]+)")
_FUNCTION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\(\)\s*\{", re.MULTILINE)
_CASE_PATTERN = re.compile(r"^\s*[^()$]*\)")
_KEYWORDS = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "esac"}
_WORD_LISTS = {"for", "case"}
# The script's wrapper `run STEP COMMAND...` runs its third word.
_WRAPPERS = {"run": 1}


def livecd_commands() -> dict[str, str]:
    commands = {}
    for number, line in enumerate(COMMANDS_FILE.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        command, package = line.split("\t")
        assert re.fullmatch(r"[a-z0-9-]+/[A-Za-z0-9_.+-]+", package), f"line {number}: {package!r} is no package"
        assert command not in commands, f"line {number}: {command} listed twice"
        commands[command] = package
    return commands


def bash_builtins() -> set[str]:
    done = subprocess.run(["bash", "-c", "compgen -b; compgen -k"], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def _logical_lines(script: str):
    in_case = False
    for line in script.replace("\\\n", " ").splitlines():
        line = re.sub(r"(^|\s)#.*", "", line)
        words = line.split()
        if words[:1] == ["case"]:
            in_case = True
            continue
        if words[:1] == ["esac"]:
            in_case = False
            continue
        if in_case:
            line = _CASE_PATTERN.sub("", line, count=1)
        yield line


def commands_run_by(script: str) -> set[str]:
    """Names the shell looks up as commands in `script` (functions of the script excluded)."""
    functions = set(_FUNCTION.findall(script))
    found = set()
    for line in _logical_lines(script):
        if _FUNCTION.match(line):
            continue
        for segment in _SEPARATOR.split(_REDIRECTION.sub(" ", line)):
            words = segment.split()
            while words and (_ASSIGNMENT.match(words[0]) or words[0] in _KEYWORDS):
                words.pop(0)
            if not words or words[0] in _WORD_LISTS:
                continue
            skip = _WRAPPERS.get(words[0])
            if skip is not None:
                words = words[1 + skip:]
                if not words:
                    continue
            name = words[0].strip("\"'")
            if name and not name.startswith("$") and name not in functions:
                found.add(name)
    return found


def test_every_selftest_command_is_on_the_cd():
    script = SELFTEST_SCRIPT.read_text()
    used = commands_run_by(script) - bash_builtins()
    missing = sorted(used - set(livecd_commands()))
    assert not missing, f"{SELFTEST_SCRIPT.name} runs commands the live CD lacks: {missing}"
    assert {"zpool", "zfs", "zgenhostid", "modprobe", "sha256sum", "dd", "udevadm"} <= used


def test_selftest_runs_under_bash_as_sh():
    assert SELFTEST_SCRIPT.read_text().startswith("#!/bin/sh\n")
    assert livecd_commands()["sh"] == "app-alternatives/sh"
    subprocess.run(["bash", "--posix", "-n", str(SELFTEST_SCRIPT)], check=True)


def test_extractor_finds_commands_in_every_position():
    script = (
        "f() {\n\tx=$(a1 | a2 2>&1) && a3 || a4; `a5`\n}\n"
        "if a6; then\n\trun step a7 -x \\\n\t\tlong\nfi\n"
        "case $v in\n*\"b c\"*) a8 ;;\nword) y=1 ;;\nesac\n"
        "for w in not commands; do f \"$w\" > /dev/null; done\n"
        "[ -b /dev/x ] && cmp a b  # trailing comment\n"
    )
    assert commands_run_by(script) == {"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "[", "cmp"}


def test_unmerged_packages_are_not_on_the_list():
    spec = ISO_SPEC.read_text()
    unmerged = set(re.findall(r"^\t(\S+/\S+)$", spec.split("livecd/unmerge:")[1].split("\n\n")[0], re.MULTILINE))
    assert "sys-apps/diffutils" in unmerged
    listed = set(livecd_commands().values())
    assert not listed & unmerged, f"listed but unmerged from the CD: {sorted(listed & unmerged)}"
    assert "cmp" not in livecd_commands()


@pytest.mark.parametrize("command", ["cmp", "diff", "make"])
def test_a_script_using_an_unmerged_command_is_caught(command):
    used = commands_run_by(f"#!/bin/sh\n{command} a b || exit 1\n") - bash_builtins()
    assert used - set(livecd_commands()) == {command}
