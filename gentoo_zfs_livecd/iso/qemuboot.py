"""Boot a built ISO headless in QEMU, the way a user boots it, and read the ZFS self-test verdict.

QEMU starts on the ISO itself, through its own boot loader: SeaBIOS with the ISO as a CD, OVMF
(UEFI) with the ISO as a CD, or the ISO as a USB stick (its hybrid image). A sparse scratch disk
with the serial `zfs-selftest` is attached; the CD's /etc/local.d/zfs-selftest.start sees it and
runs, so the boot line needs no editing. The script writes its verdict to the first serial port,
which QEMU records:

    ZFS-SELFTEST PASS kernel=<release> zfs=<module version> userland=<userland version>
    ZFS-SELFTEST FAIL <step>: <message>
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

SCRATCH_SERIAL = "zfs-selftest"
QEMU_PACKAGE = "qemu-system-x86"
ACCEL_MODES = ("auto", "kvm", "tcg")
TAIL_LINES = 40
# After a panic the call trace follows; keep reading briefly so it lands in the log.
PANIC_GRACE_S = 3.0
POLL_INTERVAL_S = 0.2

# Probing KVM with a real-mode boot sector is not enough: on some hosts that runs while a 64-bit
# kernel hangs right after its real-mode setup. So the probe boots the ISO's kernel (no initrd)
# under KVM and under TCG side by side and waits for its banner. Working KVM prints it long before
# TCG does however loaded the machine is; KVM still silent when TCG has taken twice its own time
# (at least KVM_GRACE_S) is broken. No fixed limit: a slow machine only makes both slower.
_KERNEL_BANNER = b"Linux version"
KVM_GRACE_S = 5.0
PROBE_CAP_S = 600.0
FIRMWARES = ("bios", "uefi")
MEDIA = ("cdrom", "usb")
# Debian 12's ovmf package (its files as installed on the CI machine) and Gentoo's
# sys-firmware/edk2-bin (gentoo/gentoo sys-firmware/edk2-bin/edk2-bin-202605.ebuild at 0a25b968:
# /usr/share/edk2/OvmfX64/, with OVMF_CODE.fd and OVMF_VARS.fd).
OVMF_PAIRS = (
    ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
    ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
    ("/usr/share/edk2/OvmfX64/OVMF_CODE.fd", "/usr/share/edk2/OvmfX64/OVMF_VARS.fd"),
)

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_RESULT = re.compile(r"ZFS-SELFTEST\s+(PASS|FAIL)\b\s*(.*)", re.IGNORECASE)
# `$` is excluded so an echoed copy of the script source ("kernel=$(uname -r)") is no verdict,
# `[` because a printk timestamp may follow the value without a space.
_PASS_FIELD = re.compile(r"\b(kernel|zfs|userland)=([^\s$[]+)")
_FAIL_DETAIL = re.compile(r"([\w.-]+)\s*:\s*(.*)")
_PANIC = re.compile(r"Kernel panic - not syncing:?\s*(.*)")


@dataclass(frozen=True)
class ConsoleVerdict:
    """What a console log says: outcome is "pass", "fail", "panic" or "none" (nothing yet)."""

    outcome: str
    line: str = ""
    kernel: str = ""
    zfs: str = ""
    userland: str = ""
    step: str = ""
    message: str = ""


NO_VERDICT = ConsoleVerdict("none")


@dataclass(frozen=True)
class BootResult:
    """A passed boot test: facts from the PASS line, how it was booted, and how QEMU ended."""

    kernel: str
    zfs: str
    userland: str
    firmware: str
    media: str
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
            if {"kernel", "zfs", "userland"} <= fields.keys():
                return ConsoleVerdict("pass", shown, kernel=fields["kernel"], zfs=fields["zfs"],
                                      userland=fields["userland"])
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


def _start_probe(qemu: str, accel: str, kernel, serial_log: Path) -> subprocess.Popen:
    serial_log.write_bytes(b"")
    argv = [
        qemu, "-accel", accel, "-cpu", "max", "-m", "256", "-nodefaults", "-no-user-config",
        "-display", "none", "-no-reboot", "-nic", "none", "-monitor", "none",
        "-serial", f"file:{_qemu_opt_path(serial_log)}",
        "-kernel", str(kernel), "-append", "console=ttyS0,115200 panic=-1",
    ]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def accel_starts_kernel(qemu: str, kernel, work_dir, *, candidate: str = "kvm", reference: str = "tcg",
                        cap: float = PROBE_CAP_S) -> bool:
    """Whether `kernel` prints its banner under `candidate` before `reference` has taken twice its time."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    logs = {role: work_dir / f"{role}-probe.log" for role in ("candidate", "reference")}
    procs = {"candidate": _start_probe(qemu, candidate, kernel, logs["candidate"]),
             "reference": _start_probe(qemu, reference, kernel, logs["reference"])}
    started = time.monotonic()
    deadline = started + cap
    try:
        while True:
            candidate_exited = procs["candidate"].poll() is not None
            if _KERNEL_BANNER in logs["candidate"].read_bytes():
                return True
            if candidate_exited:
                return False
            if _KERNEL_BANNER in logs["reference"].read_bytes():
                reference_took = time.monotonic() - started
                deadline = min(deadline, started + max(2 * reference_took, reference_took + KVM_GRACE_S))
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_INTERVAL_S)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def choose_accel(mode: str, qemu: str, iso, work_dir) -> str:
    """"kvm" or "tcg". auto picks KVM only if /dev/kvm is usable and the ISO's kernel really starts under it."""
    if mode not in ACCEL_MODES:
        raise UserError(f"boot test acceleration {mode!r} is not one of {', '.join(ACCEL_MODES)}; pick one of them")
    if mode != "auto":
        return mode
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    kernel, _ = extract_boot_files(iso, read_boot_entry(iso), Path(work_dir) / "probe")
    return "kvm" if accel_starts_kernel(qemu, kernel, work_dir) else "tcg"


def find_ovmf(pairs=OVMF_PAIRS) -> tuple[Path, Path]:
    """OVMF's code and variable-store images, or a UserError naming the package to install."""
    for code, variables in pairs:
        if Path(code).is_file() and Path(variables).is_file():
            return Path(code), Path(variables)
    raise UserError("no OVMF firmware for the UEFI boot test: install the Debian package ovmf "
                    "(Gentoo: sys-firmware/edk2-bin)")


def qemu_command(qemu: str, *, accel: str, memory_mb: int, cpus: int, iso, scratch, serial_log,
                 firmware: str = "bios", media: str = "cdrom", ovmf: tuple[Path, Path] | None = None) -> list[str]:
    """argv for a headless boot of the ISO through its boot loader, serial port to serial_log.

    firmware: "bios" (SeaBIOS) or "uefi" (ovmf = (code, writable copy of the variable store)).
    media: the ISO as a "cdrom" or as a "usb" stick. scratch: raw image attached as a virtio
    disk with the serial zfs-selftest, or None.
    """
    if firmware not in FIRMWARES or media not in MEDIA:
        raise UserError(f"boot test firmware {firmware!r}/media {media!r}: use one of {FIRMWARES} / {MEDIA}")
    argv = [
        qemu, "-accel", accel, "-cpu", "max", "-smp", str(cpus), "-m", str(memory_mb),
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-nic", "none",
        "-monitor", "none", "-serial", f"file:{_qemu_opt_path(serial_log)}",
    ]
    if firmware == "uefi":
        code, variables = ovmf
        argv += ["-drive", f"if=pflash,format=raw,readonly=on,file={_qemu_opt_path(code)}",
                 "-drive", f"if=pflash,format=raw,file={_qemu_opt_path(variables)}"]
    if media == "cdrom":
        argv += ["-drive", f"file={_qemu_opt_path(iso)},media=cdrom,readonly=on,if=none,id=iso",
                 "-device", "ide-cd,drive=iso,bootindex=0"]
    else:
        argv += ["-device", "qemu-xhci",
                 "-drive", f"file={_qemu_opt_path(iso)},format=raw,readonly=on,if=none,id=iso",
                 "-device", "usb-storage,drive=iso,bootindex=0"]
    if scratch is not None:
        argv += ["-drive", f"file={_qemu_opt_path(scratch)},format=raw,if=none,id=scratch",
                 "-device", f"virtio-blk-pci,drive=scratch,serial={SCRATCH_SERIAL}"]
    return argv


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


def run_boot_test(iso, work_dir, console_log, *, firmware: str = "bios", media: str = "cdrom",
                  timeout: float = 900, accel: str = "auto", qemu: str = "qemu-system-x86_64",
                  memory_mb: int = 2048, cpus: int = 2, scratch_size_mb: int | None = 1024,
                  poweroff_grace: float = 60) -> BootResult:
    """Boot the ISO through its boot loader with the scratch disk attached and return the PASS facts.

    Raises UserError when QEMU, OVMF or the ISO is unusable, BootTestError (a UserError carrying
    the console tail) for a FAIL line, an early QEMU exit or the timeout. The serial console is
    always written to console_log. QEMU never outlives this call.
    """
    qemu_path = find_qemu(qemu)
    iso, work_dir, console_log = Path(iso), Path(work_dir), Path(console_log)
    if not iso.is_file():
        raise UserError(f"{iso}: ISO not found; build it first or pass the right path")
    work_dir.mkdir(parents=True, exist_ok=True)
    ovmf = None
    if firmware == "uefi":
        code, variables = find_ovmf()
        ovmf = (code, work_dir / "ovmf-vars.fd")
        shutil.copyfile(variables, ovmf[1])
    scratch = None if scratch_size_mb is None else create_scratch_disk(work_dir / "scratch.img", scratch_size_mb)
    chosen = choose_accel(accel, qemu_path, iso, work_dir)
    serial_log = work_dir / "serial.log"
    serial_log.write_bytes(b"")
    stderr_path = work_dir / "qemu.stderr"
    argv = qemu_command(qemu_path, accel=chosen, memory_mb=memory_mb, cpus=cpus, iso=iso, scratch=scratch,
                        serial_log=serial_log, firmware=firmware, media=media, ovmf=ovmf)
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
        return BootResult(kernel=watch.verdict.kernel, zfs=watch.verdict.zfs, userland=watch.verdict.userland,
                          firmware=firmware, media=media, accel=chosen, console_log=console_log,
                          powered_off=watch.exited)
    message = _failure_message(watch, timeout, stderr_path.read_text(errors="replace"), console_log)
    raise BootTestError(message, console_log, console_tail(watch.text), powered_off=watch.exited)


def _keep_log(serial_log: Path, console_log: Path) -> None:
    write_bytes(console_log, serial_log.read_bytes())
