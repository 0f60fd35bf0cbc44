"""Tell people how a build ended: e-mail (SMTP or the local sendmail) and a JSON webhook.

A notification that cannot be delivered must not hide the build's own outcome, so `notify`
never raises for a delivery problem: it returns one line per channel that failed.

Settings (the caller passes the mapping that holds these two sections; both are optional):

    smtp:
      host: smtp.example.org       # unset: hand the message to the local sendmail
      port: 25
      from: catalyst@build.example.org
      to: [releng@example.org]     # no recipients: no e-mail
      sendmail: /usr/sbin/sendmail
    webhook:
      url: https://hooks.example.org/T0K3N   # unset: no webhook
      timeout: 10
"""
import email.policy
import socket
import subprocess
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import urlsplit

from gentoo_zfs_livecd.files import tail_lines

SUBJECT_PREFIX = "[gentoo-zfs-livecd]"
TAIL_LINES = 100
SENDMAIL = "/usr/sbin/sendmail"
SMTP_TIMEOUT = 60
WEBHOOK_TIMEOUT = 10
# SMTP's own line limit: the default 78 folds a long subject right after "Subject:", which
# some readers then show with a leading blank.
MAIL_POLICY = email.policy.default.clone(max_line_length=998)


@dataclass(frozen=True)
class BuildEvent:
    """How one build ended. `start`/`end` are ISO 8601 timestamps."""
    outcome: str                      # "succeeded", "failed" or "interrupted"
    log_path: str | None = None
    failed_task: str | None = None
    iso_name: str | None = None
    start: str | None = None
    end: str | None = None
    warnings: tuple = ()              # what needs doing although the build went on (one line each)


def notify(settings: dict, event) -> list[str]:
    """Send `event` (a BuildEvent or a dict of its fields) to every configured channel.

    Returns one line per channel that could not be delivered; an empty list means every
    configured channel accepted the message. Delivery problems never raise.
    """
    if not isinstance(event, BuildEvent):
        event = BuildEvent(**event)
    tail = read_log_tail(event.log_path)
    problems = []
    smtp = settings.get("smtp") or {}
    if recipients(smtp):
        problems += _deliver("by e-mail " + mail_route(smtp),
                             lambda: send_mail(smtp, build_message(smtp, event, tail)))
    webhook = settings.get("webhook") or {}
    if webhook.get("url"):
        problems += _deliver("by webhook to " + url_origin(webhook["url"]),
                             lambda: post_webhook(webhook, event, tail), secret=webhook["url"])
    return problems


def _deliver(channel: str, send, secret: str | None = None) -> list[str]:
    try:
        send()
    except Exception as exc:  # any failure of one channel must leave the others and the build alone
        return [f"notification {channel} failed: {without_url_secrets(reason(exc), secret)}"]
    return []


def without_url_secrets(text: str, url: str | None) -> str:
    """`text` with the URL's user, path and query (where webhook tokens live) hidden wherever
    an HTTP library quoted them."""
    if not url:
        return text
    try:
        parts = urlsplit(url)
        pieces = [url, parts.netloc, parts.path, parts.query, parts.fragment]
        pieces.append(f"{parts.path}?{parts.query}")
    except ValueError:
        pieces = [url]
    origin = url_origin(url)
    for piece in sorted((p for p in pieces if len(p) > 1), key=len, reverse=True):
        text = text.replace(piece, origin if piece == url else "(hidden)")
    return text


def subject(event: BuildEvent) -> str:
    detail = event.iso_name if event.outcome == "succeeded" else event.failed_task
    return f"{SUBJECT_PREFIX} build {event.outcome}" + (f": {detail}" if detail else "")


def body(event: BuildEvent, tail: list[str]) -> str:
    facts = [("Outcome", event.outcome), ("Failed task", event.failed_task),
             ("ISO", event.iso_name), ("Started", event.start), ("Ended", event.end)]
    lines = [f"{name}: {value}" for name, value in facts if value]
    lines += [f"Warning: {warning}" for warning in event.warnings]
    if event.log_path:
        lines += ["", "End of the log:", "", *tail, "",
                  f"Full build log at {event.log_path}"]
    return "\n".join(lines) + "\n"


def read_log_tail(log_path, count: int = TAIL_LINES) -> list[str]:
    """The log's last lines, or one line saying why it could not be read (never raises)."""
    if not log_path:
        return []
    try:
        return tail_lines(log_path, count)
    except OSError as exc:
        return [f"(log {log_path} could not be read: {reason(exc)})"]


def recipients(smtp: dict) -> list[str]:
    to = smtp.get("to") or []
    return [to] if isinstance(to, str) else list(to)


def mail_route(smtp: dict) -> str:
    if smtp.get("host"):
        return f"to {smtp['host']}:{smtp.get('port', 25)}"
    return f"via {smtp.get('sendmail', SENDMAIL)}"


def build_message(smtp: dict, event: BuildEvent, tail: list[str]) -> EmailMessage:
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["Subject"] = subject(event)
    msg["From"] = smtp.get("from") or f"gentoo-zfs-livecd@{socket.getfqdn()}"
    msg["To"] = ", ".join(recipients(smtp))
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=socket.getfqdn())
    msg.set_content(body(event, tail))
    return msg


def send_mail(smtp: dict, msg: EmailMessage) -> None:
    """Deliver over SMTP when a host is set, otherwise through the local sendmail."""
    if smtp.get("host"):
        import smtplib
        with smtplib.SMTP(smtp["host"], int(smtp.get("port", 25)), timeout=SMTP_TIMEOUT) as conn:
            conn.send_message(msg)
        return
    sendmail = smtp.get("sendmail", SENDMAIL)
    done = subprocess.run([sendmail, "-t", "-oi"], input=msg.as_bytes(), capture_output=True,
                          timeout=SMTP_TIMEOUT)
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"exit status {done.returncode}" + (f": {said[-1]}" if said else ""))


def webhook_payload(event: BuildEvent, tail: list[str]) -> dict:
    return {**asdict(event), "subject": subject(event), "log_tail": "\n".join(tail)}


def post_webhook(webhook: dict, event: BuildEvent, tail: list[str]) -> None:
    import requests
    response = requests.post(webhook["url"], json=webhook_payload(event, tail),
                             timeout=float(webhook.get("timeout", WEBHOOK_TIMEOUT)))
    if not response.ok:
        raise RuntimeError(f"HTTP {response.status_code} {response.reason}")


def url_origin(url: str) -> str:
    """scheme://host:port only: webhook paths often carry a secret token that logs must not show."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a URL that cannot be read)"
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def reason(exc: BaseException) -> str:
    """The most specific one-line cause: the innermost OS error (e.g. "Connection refused")
    rather than the layers of wrapping that HTTP and SMTP libraries add."""
    seen = exc
    for _ in range(20):  # a bound, since nothing stops an exception chain from looping
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        if hasattr(seen, "smtp_code"):
            said = seen.smtp_error
            if isinstance(said, bytes):
                said = said.decode(errors="replace")
            return one_line(f"SMTP {seen.smtp_code} {said}")
        seen = seen.__cause__ or seen.__context__ or getattr(seen, "reason", None)
        if not isinstance(seen, BaseException):
            break
    return one_line(str(exc) or type(exc).__name__)


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
