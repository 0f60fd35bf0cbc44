"""Notifications reach a real SMTP server, a real HTTP endpoint and a real executable on loopback."""
import email
import email.policy
import stat
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from gentoo_zfs_livecd import files
from gentoo_zfs_livecd.nightly import notify
from tests.support.network import free_port

LOG_LINES = 500


class Mailbox:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server():
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, mailbox
    controller.stop()


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "logs" / "run-1" / "build.log"
    path.parent.mkdir(parents=True)
    path.write_text("".join(f"log line {n}\n" for n in range(1, LOG_LINES + 1)))
    return path


def failed_event(log):
    return {"outcome": "failed", "failed_task": "stage1", "log_path": str(log),
            "start": "2026-08-20T02:00:00+00:00", "end": "2026-08-20T03:10:00+00:00"}


def test_email_reaches_smtp_server_with_log_tail(smtp_server, log):
    controller, mailbox = smtp_server
    settings = {"smtp": {"host": "127.0.0.1", "port": controller.port,
                         "from": "builder@example.org",
                         "to": ["releng@example.org", "ops@example.org"]}}

    assert notify.notify(settings, failed_event(log)) == []

    [envelope] = mailbox.envelopes
    assert envelope.mail_from == "builder@example.org"
    assert envelope.rcpt_tos == ["releng@example.org", "ops@example.org"]
    msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert msg["Subject"] == "[gentoo-zfs-livecd] build failed: stage1"
    text = msg.get_content().replace("\r\n", "\n")
    assert "Outcome: failed" in text
    assert "Failed task: stage1" in text
    assert f"Full build log at {log}" in text
    tail = [f"log line {n}" for n in range(LOG_LINES - 99, LOG_LINES + 1)]
    assert "\n".join(tail) in text
    assert f"log line {LOG_LINES - 100}\n" not in text


def test_success_subject_names_iso(smtp_server, log):
    controller, mailbox = smtp_server
    settings = {"smtp": {"host": "127.0.0.1", "port": controller.port, "to": "releng@example.org"}}
    event = notify.BuildEvent(outcome="succeeded", iso_name="install-amd64-zfs-20260820T000000Z.iso",
                              log_path=str(log))

    assert notify.notify(settings, event) == []

    [envelope] = mailbox.envelopes
    msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert msg["Subject"] == "[gentoo-zfs-livecd] build succeeded: install-amd64-zfs-20260820T000000Z.iso"
    assert envelope.rcpt_tos == ["releng@example.org"]


def test_webhook_receives_json(httpserver, log):
    httpserver.expect_oneshot_request("/hooks/s3cret", method="POST").respond_with_json({"ok": True})
    settings = {"webhook": {"url": httpserver.url_for("/hooks/s3cret"), "timeout": 5}}
    event = {**failed_event(log), "iso_name": "install-amd64-zfs-20260820T000000Z.iso"}

    assert notify.notify(settings, event) == []

    httpserver.check_assertions()
    [(request, _response)] = httpserver.log
    assert request.headers["Content-Type"] == "application/json"
    payload = request.get_json()
    assert payload["outcome"] == "failed"
    assert payload["failed_task"] == "stage1"
    assert payload["log_path"] == str(log)
    assert payload["iso_name"] == "install-amd64-zfs-20260820T000000Z.iso"
    assert payload["start"] == "2026-08-20T02:00:00+00:00"
    assert payload["end"] == "2026-08-20T03:10:00+00:00"
    assert payload["subject"] == "[gentoo-zfs-livecd] build failed: stage1"
    assert payload["log_tail"].splitlines() == [f"log line {n}" for n in range(401, 501)]


def test_webhook_error_status_is_one_line(httpserver, log):
    httpserver.expect_request("/hook").respond_with_data("boom", status=500)
    settings = {"webhook": {"url": httpserver.url_for("/hook")}}

    [problem] = notify.notify(settings, failed_event(log))

    assert problem == (f"notification by webhook to http://{httpserver.host}:{httpserver.port} "
                       "failed: HTTP 500 INTERNAL SERVER ERROR")


def test_undeliverable_channels_are_reported_not_raised(log):
    port = free_port()
    settings = {"smtp": {"host": "127.0.0.1", "port": port, "to": ["releng@example.org"]},
                "webhook": {"url": f"http://127.0.0.1:{port}/hooks/s3cret", "timeout": 5}}

    problems = notify.notify(settings, failed_event(log))

    assert problems == [
        f"notification by e-mail to 127.0.0.1:{port} failed: Connection refused",
        f"notification by webhook to http://127.0.0.1:{port} failed: Connection refused",
    ]


def test_no_channel_configured_sends_nothing(log):
    assert notify.notify({"smtp": {"host": "127.0.0.1", "to": []}, "webhook": {}},
                         failed_event(log)) == []


def fake_sendmail(tmp_path, script_body):
    path = tmp_path / "sendmail"
    path.write_text("#!/bin/sh\n" + script_body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_without_host_uses_sendmail(tmp_path, log):
    record = tmp_path / "record"
    sendmail = fake_sendmail(tmp_path, f'printf "%s\\n" "$@" > {record}.args\ncat > {record}.stdin\n')
    settings = {"smtp": {"to": ["releng@example.org"], "from": "builder@example.org",
                         "sendmail": str(sendmail)}}

    assert notify.notify(settings, failed_event(log)) == []

    assert Path(f"{record}.args").read_text().split() == ["-t", "-oi"]
    msg = email.message_from_bytes(Path(f"{record}.stdin").read_bytes(), policy=email.policy.default)
    assert msg["To"] == "releng@example.org"
    assert msg["From"] == "builder@example.org"
    assert msg["Subject"] == "[gentoo-zfs-livecd] build failed: stage1"
    assert f"log line {LOG_LINES}" in msg.get_content()


def test_failing_sendmail_is_one_line(tmp_path, log):
    sendmail = fake_sendmail(tmp_path, 'cat >/dev/null\necho "first" >&2\necho "queue full" >&2\nexit 75\n')
    settings = {"smtp": {"to": ["releng@example.org"], "sendmail": str(sendmail)}}

    assert notify.notify(settings, failed_event(log)) == [
        f"notification by e-mail via {sendmail} failed: exit status 75: queue full"]


def test_missing_sendmail_is_one_line(tmp_path, log):
    settings = {"smtp": {"to": ["releng@example.org"], "sendmail": str(tmp_path / "none")}}

    assert notify.notify(settings, failed_event(log)) == [
        f"notification by e-mail via {tmp_path / 'none'} failed: No such file or directory"]


def test_unreadable_log_is_said_in_the_message(tmp_path):
    missing = tmp_path / "gone.log"
    event = notify.BuildEvent(outcome="failed", failed_task="iso", log_path=str(missing))

    text = notify.body(event, notify.read_log_tail(event.log_path))

    assert f"(log {missing} could not be read: No such file or directory)" in text
    assert f"Full build log at {missing}" in text


@pytest.mark.parametrize("trailing_newline", [True, False])
def test_tail_lines_across_blocks(tmp_path, trailing_newline):
    path = tmp_path / "big.log"
    lines = [f"{n:05d} " + "x" * (n % 37) for n in range(3000)]
    path.write_text("\n".join(lines) + ("\n" if trailing_newline else ""))

    assert files.tail_lines(path, 100, block_size=64) == lines[-100:]
    assert files.tail_lines(path, 1, block_size=7) == lines[-1:]
    assert files.tail_lines(path, 5000, block_size=4096) == lines


def test_tail_lines_small_and_empty_files(tmp_path):
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    short = tmp_path / "short.log"
    short.write_bytes(b"one\ntwo\n\xff\xfe broken utf-8\n")

    assert files.tail_lines(empty, 100) == []
    assert files.tail_lines(short, 0) == []
    assert files.tail_lines(short, 100) == ["one", "two", "\ufffd\ufffd broken utf-8"]
    assert files.tail_lines(short, 2) == ["two", "\ufffd\ufffd broken utf-8"]


def test_tail_lines_reads_at_most_max_bytes(tmp_path):
    path = tmp_path / "progress.log"
    path.write_bytes(b"start\n" + b"#" * 10_000 + b"\nlast\n")

    assert files.tail_lines(path, 100, block_size=256, max_bytes=1000) == ["#" * 994, "last"]


def test_url_origin_hides_path_and_credentials():
    assert notify.url_origin("https://user:pw@hooks.example.org:8443/T0K3N?x=1") == \
        "https://hooks.example.org:8443"
