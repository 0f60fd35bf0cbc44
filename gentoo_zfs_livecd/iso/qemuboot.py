"""Boot a built ISO headless in QEMU and read the ZFS self-test verdict from its serial console.

The ISO's live root carries /etc/local.d/zfs-selftest.start, which acts only when the kernel
command line holds `zfs_selftest`. We boot the kernel and initramfs of the ISO's first GRUB
menu entry directly (-kernel/-initrd) with that entry's arguments plus a serial console and the
flag, attach a sparse scratch disk as the first virtio disk, and watch the console for

    ZFS-SELFTEST PASS kernel=<release> zfs=<version>
    ZFS-SELFTEST FAIL <step>: <message>

or a kernel panic.
"""
import codecs
import io
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from gentoo_zfs_livecd.atomic import replacing, write_bytes
from gentoo_zfs_livecd.errors import UserError
from gentoo_zfs_livecd.iso.grubcfg import GRUB_CFG, BootEntry, first_entry

SELFTEST_FLAG = "zfs_selftest"
EXTRA_BOOT_ARGS = ("console=ttyS0,115200", "rd.shell=0", SELFTEST_FLAG)
# dokeymap makes the initramfs wait at a keymap prompt.
DROPPED_BOOT_ARGS = frozenset({"dokeymap"})
QEMU_PACKAGE = "qemu-system-x86"
ACCEL_MODES = ("auto", "kvm", "tcg")
TAIL_LINES = 40
# After a panic the call trace follows; keep reading briefly so it lands in the log.
PANIC_GRACE_S = 3.0
POLL_INTERVAL_S = 0.2

# Probing KVM with a real-mode boot sector is not enough: on some hosts that runs while a
# 64-bit kernel hangs right after its real-mode setup. So the probe boots the kernel under
# test (no initrd, no root) and waits for its banner.
_KERNEL_BANNER = b"Linux version"
PROBE_TIME_LIMIT_S = 10.0

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_RESULT = re.compile(r"ZFS-SELFTEST\s+(PASS|FAIL)\b\s*(.*)", re.IGNORECASE)
# `$` is excluded so an echoed copy of the script source ("kernel=$(uname -r)") is no verdict,
# `[` because a printk timestamp may follow the value without a space.
_PASS_FIELD = re.compile(r"\b(kernel|zfs)=([^\s$[]+)")
_FAIL_DETAIL = re.compile(r"([\w.-]+)\s*:\s*(.*)")
_PANIC = re.compile(r"Kernel panic - not syncing:?\s*(.*)")


@dataclass(frozen=True)
class ConsoleVerdict:
    """What a console log says: outcome is "pass", "fail", "panic" or "none" (nothing yet)."""

    outcome: str
    line: str = ""
    kernel: str = ""
    zfs: str = ""
    step: str = ""
    message: str = ""


NO_VERDICT = ConsoleVerdict("none")


@dataclass(frozen=True)
class BootResult:
    """A passed boot test: facts from the PASS line, the acceleration used, and how QEMU ended."""

    kernel: str
    zfs: str
    accel: str
    console_log: Path
    powered_off: bool


class BootTestError(UserError):
    """A failed boot test. `tail` holds the last console lines (ANSI stripped) for display."""

    def __init__(self, message, console_log, tail, powered_off):
        super().__init__(message)
        self.console_log = Path(console_log)
        self.tail = tail
        self.powered_off = powered_off


def clean_console_text(text: str) -> str:
    """Remove ANSI escapes, carriage returns and other control characters (tabs and newlines stay)."""
    text = _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", text)


def line_verdict(line: str) -> ConsoleVerdict:
    """Verdict of one cleaned console line; the marker may sit anywhere in it (timestamps, interleaving)."""
    result = _RESULT.search(line)
    if result:
        word, rest = result.group(1).upper(), result.group(2).strip()
        shown = f"ZFS-SELFTEST {word} {rest}".strip()
        if word == "PASS":
            fields = dict(_PASS_FIELD.findall(rest))
            if "kernel" in fields and "zfs" in fields:
                return ConsoleVerdict("pass", shown, kernel=fields["kernel"], zfs=fields["zfs"])
            return NO_VERDICT
        detail = _FAIL_DETAIL.match(rest)
        if detail:
            return ConsoleVerdict("fail", shown, step=detail.group(1), message=detail.group(2).strip())
        return ConsoleVerdict("fail", shown, message=rest)
    panic = _PANIC.search(line)
    if panic:
        return ConsoleVerdict("panic", panic.group(0).strip(), message=panic.group(1).strip())
    return NO_VERDICT


def parse_console(text: str) -> ConsoleVerdict:
    """First verdict (PASS, FAIL or kernel panic) in a console log, or NO_VERDICT."""
    for line in clean_console_text(text).split("\n"):
        verdict = line_verdict(line)
        if verdict.outcome != "none":
            return verdict
    return NO_VERDICT


def console_tail(text: str, count: int = TAIL_LINES) -> list[str]:
    """The last `count` non-empty lines of a console log, cleaned for display."""
    lines = [line.rstrip() for line in clean_console_text(text).split("\n")]
    return [line for line in lines if line][-count:]


def selftest_boot_args(entry_args) -> str:
    """The entry's arguments without the interactive ones, plus serial console, rd.shell=0 and the flag."""
    kept = [arg for arg in entry_args if arg not in DROPPED_BOOT_ARGS]
    return " ".join(kept + [arg for arg in EXTRA_BOOT_ARGS if arg not in kept])


def _iso_lookup(iso_obj, path: str) -> dict:
    if iso_obj.has_rock_ridge():
        return {"rr_path": path}
    return {"joliet_path": path}


def _open_iso(iso: Path):
    import pycdlib
    from pycdlib.pycdlibexception import PyCdlibException

    iso_obj = pycdlib.PyCdlib()
    try:
        iso_obj.open(str(iso))
    except (PyCdlibException, OSError) as exc:
        raise UserError(f"{iso}: cannot read it as an ISO 9660 image ({exc}); rebuild the ISO") from exc
    if not (iso_obj.has_rock_ridge() or iso_obj.has_joliet()):
        iso_obj.close()
        raise UserError(f"{iso}: has neither Rock Ridge nor Joliet names; rebuild it with grub-mkrescue (catalyst does)")
    return iso_obj


def _copy_out(iso_obj, iso: Path, path: str, out) -> None:
    from pycdlib.pycdlibexception import PyCdlibException

    try:
        iso_obj.get_file_from_iso_fp(out, **_iso_lookup(iso_obj, path))
    except PyCdlibException as exc:
        raise UserError(f"{iso}: cannot read {path} from the ISO ({exc}); check that the ISO is complete") from exc


def read_boot_entry(iso) -> BootEntry:
    """The first GRUB menu entry of the ISO's /boot/grub/grub.cfg."""
    iso = Path(iso)
    iso_obj = _open_iso(iso)
    try:
        buf = io.BytesIO()
        _copy_out(iso_obj, iso, GRUB_CFG, buf)
    finally:
        iso_obj.close()
    return first_entry(buf.getvalue().decode("utf-8", "replace"), f"{iso}:{GRUB_CFG}")


def extract_boot_files(iso, entry: BootEntry, dest_dir) -> tuple[Path, Path]:
    """Copy the entry's kernel and initrd out of the ISO into dest_dir; returns their paths."""
    iso, dest_dir = Path(iso), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    outputs = (dest_dir / "kernel", dest_dir / "initrd")
    iso_obj = _open_iso(iso)
    try:
        for inner, target in zip((entry.kernel, entry.initrd), outputs):
            _extract_one(iso_obj, iso, inner, target)
    finally:
        iso_obj.close()
    return outputs


def _extract_one(iso_obj, iso: Path, inner: str, target: Path) -> None:
    with replacing(target) as out:
        _copy_out(iso_obj, iso, inner, out)


def create_scratch_disk(path, size_mb: int) -> Path:
    """A sparse, zero-filled raw disk image of size_mb MiB (replaces any previous one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as disk:
        disk.truncate(size_mb * 1024 * 1024)
    return path


def find_qemu(qemu: str) -> str:
    """Absolute path of the QEMU binary, or a UserError naming it and its Debian package."""
    found = shutil.which(qemu)
    if found is None:
        raise UserError(
            f"QEMU binary {qemu} not found: install the Debian package {QEMU_PACKAGE} "
            f"(apt-get install {QEMU_PACKAGE}) or pass the path of qemu-system-x86_64"
        )
    return found


def _qemu_opt_path(path) -> str:
    """QEMU option values split at commas; a literal comma is written twice."""
    return str(path).replace(",", ",,")


def kernel_starts(qemu: str, accel: str, kernel, work_dir, time_limit: float = PROBE_TIME_LIMIT_S) -> bool:
    """Whether `kernel` prints its banner on the serial port under `accel` within time_limit seconds."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    serial_log = work_dir / f"{accel}-probe.log"
    serial_log.write_bytes(b"")
    argv = [
        qemu, "-accel", accel, "-cpu", "max", "-m", "256", "-nodefaults", "-no-user-config",
        "-display", "none", "-no-reboot", "-nic", "none", "-monitor", "none",
        "-serial", f"file:{_qemu_opt_path(serial_log)}",
        "-kernel", str(kernel), "-append", "console=ttyS0,115200 panic=-1",
    ]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + time_limit
    try:
        while True:
            exited = proc.poll() is not None
            if _KERNEL_BANNER in serial_log.read_bytes():
                return True
            if exited or time.monotonic() >= deadline:
                return False
            time.sleep(POLL_INTERVAL_S)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def choose_accel(mode: str, qemu: str, kernel, work_dir) -> str:
    """"kvm" or "tcg". auto picks KVM only if /dev/kvm is usable and `kernel` really starts under it."""
    if mode not in ACCEL_MODES:
        raise UserError(f"boot test acceleration {mode!r} is not one of {', '.join(ACCEL_MODES)}; pick one of them")
    if mode != "auto":
        return mode
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    return "kvm" if kernel_starts(qemu, "kvm", kernel, work_dir) else "tcg"


def qemu_command(qemu: str, *, accel: str, memory_mb: int, cpus: int, iso, scratch, kernel, initrd,
                 append: str, serial_log) -> list[str]:
    """argv for a headless boot: serial console to serial_log, ISO as CD, scratch as first virtio disk."""
    return [
        qemu, "-accel", accel, "-cpu", "max", "-smp", str(cpus), "-m", str(memory_mb),
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-nic", "none",
        "-monitor", "none", "-serial", f"file:{_qemu_opt_path(serial_log)}",
        "-drive", f"file={_qemu_opt_path(iso)},media=cdrom,readonly=on,if=ide",
        "-drive", f"file={_qemu_opt_path(scratch)},format=raw,if=virtio",
        "-kernel", str(kernel), "-initrd", str(initrd), "-append", append,
    ]


@dataclass
class _Watch:
    verdict: ConsoleVerdict
    exited: bool
    returncode: int | None
    text: str


def _watch_console(proc: subprocess.Popen, serial_log, timeout: float, poweroff_grace: float) -> _Watch:
    """Follow QEMU's serial log until a verdict plus grace time, QEMU's exit, or the timeout.

    QEMU is killed when it is still running at the end.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    chunks, pending = [], ""
    verdict = NO_VERDICT
    deadline = time.monotonic() + timeout
    with open(serial_log, "rb") as log:
        while True:
            exited = proc.poll() is not None
            new = decoder.decode(log.read(), final=exited)
            chunks.append(new)
            complete, _, pending = (pending + new).rpartition("\n")
            if exited:
                complete, pending = complete + "\n" + pending, ""
            if verdict.outcome == "none":
                verdict = parse_console(complete)
                if verdict.outcome != "none":
                    grace = PANIC_GRACE_S if verdict.outcome == "panic" else poweroff_grace
                    deadline = time.monotonic() + grace
            if exited or time.monotonic() >= deadline:
                break
            time.sleep(POLL_INTERVAL_S)
        if not exited:
            proc.kill()
            proc.wait()
            chunks.append(decoder.decode(log.read(), final=True))
    return _Watch(verdict, exited, proc.returncode if exited else None, "".join(chunks))


def _failure_message(watch: _Watch, timeout: float, qemu_stderr: str, console_log: Path) -> str:
    if watch.verdict.outcome in ("fail", "panic"):
        what = watch.verdict.line
    elif watch.exited and watch.returncode:
        last = qemu_stderr.strip().splitlines()[-1:] or ["no message"]
        what = f"QEMU exited with status {watch.returncode} before the self-test reported: {last[0]}"
    elif watch.exited:
        what = "the guest powered off without printing a ZFS-SELFTEST line (is /etc/local.d/zfs-selftest.start in the ISO?)"
    else:
        what = f"no ZFS-SELFTEST line within {timeout:g} s, QEMU killed"
    return f"boot test failed: {what} (console log: {console_log})"


def run_boot_test(iso, work_dir, console_log, *, timeout: float = 900, accel: str = "auto",
                  qemu: str = "qemu-system-x86_64", memory_mb: int = 2048, cpus: int = 2,
                  scratch_size_mb: int = 1024, poweroff_grace: float = 60) -> BootResult:
    """Boot the ISO with the ZFS self-test flag and return the PASS facts.

    Raises UserError when QEMU or the ISO is unusable, BootTestError (a UserError carrying the
    console tail) for a FAIL line, a kernel panic, an early QEMU exit or the timeout.
    The console log is always written to console_log.
    """
    qemu_path = find_qemu(qemu)
    iso, work_dir, console_log = Path(iso), Path(work_dir), Path(console_log)
    if not iso.is_file():
        raise UserError(f"{iso}: ISO not found; build it first or pass the right path")
    work_dir.mkdir(parents=True, exist_ok=True)
    entry = read_boot_entry(iso)
    kernel, initrd = extract_boot_files(iso, entry, work_dir)
    scratch = create_scratch_disk(work_dir / "scratch.img", scratch_size_mb)
    chosen = choose_accel(accel, qemu_path, kernel, work_dir)
    serial_log = work_dir / "serial.log"
    serial_log.write_bytes(b"")
    stderr_path = work_dir / "qemu.stderr"
    argv = qemu_command(qemu_path, accel=chosen, memory_mb=memory_mb, cpus=cpus, iso=iso, scratch=scratch,
                        kernel=kernel, initrd=initrd, append=selftest_boot_args(entry.args), serial_log=serial_log)
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
    try:
        watch = _watch_console(proc, serial_log, timeout, poweroff_grace)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _keep_log(serial_log, console_log)
    if watch.verdict.outcome == "pass":
        return BootResult(kernel=watch.verdict.kernel, zfs=watch.verdict.zfs, accel=chosen,
                          console_log=console_log, powered_off=watch.exited)
    message = _failure_message(watch, timeout, stderr_path.read_text(errors="replace"), console_log)
    raise BootTestError(message, console_log, console_tail(watch.text), powered_off=watch.exited)


def _keep_log(serial_log: Path, console_log: Path) -> None:
    write_bytes(console_log, serial_log.read_bytes())
