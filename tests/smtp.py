"""A real SMTP server (aiosmtpd) for tests: keeps what it accepts, and can misbehave on request.

- `reject_recipients`: addresses answered with 550 at RCPT (a permanent refusal);
- `defer_data`: how many DATA commands to answer 451 before accepting (a transient one), counted in `deferred`;
- `rcpt_delay`: seconds to wait at each RCPT (sets `rcpt_started`), to kill a sender mid-job;
- `tls=True`: offers STARTTLS with a self-signed certificate for 127.0.0.1 (`cafile` to trust it);
- `script`: faults for the next mail transactions, one consumed per transaction (`script_faults()`):
  "421" / "550" at RCPT, "451" at DATA, "drop" (connection closed at the end of DATA, the mail
  not kept) and "drop_after_store" (kept, then closed without the 250: the sender cannot know).
  What each fault did is in `refusals` (recipient, fault, monotonic time).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:  # type: ignore[no-untyped-def]
        fault = self.sink._take_fault(("421", "550"))
        if fault == "421":
            self.sink._note(address, fault)
            return "421 4.3.2 Service shutting down, try again later"
        if fault == "550":
            self.sink._note(address, fault)
            return "550 5.1.1 No such mailbox (scripted)"
        if self.sink.rcpt_delay:
            self.sink.rcpt_started.set()  # a test may kill the sender now: mid-job, before any content
            await asyncio.sleep(self.sink.rcpt_delay)
        if address in self.sink.reject_recipients:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        fault = self.sink._take_fault(("451", "drop", "drop_after_store"))
        if fault is not None:
            for rcpt in envelope.rcpt_tos:
                self.sink._note(rcpt, fault)
            if fault == "451":
                return "451 4.3.0 Try again later (scripted)"
            if fault == "drop_after_store":
                self.sink._keep(session, envelope)
            server.transport.close()  # no reply: the sender sees the connection drop
            return "421 4.3.2 Closing"  # never reaches the sender
        with self.sink.lock:
            self.sink.sessions.add(session.peer)
            if self.sink.defer_data > 0:
                self.sink.defer_data -= 1
                self.sink.deferred += 1
                return "451 4.3.0 Try again later"
        self.sink._keep(session, envelope)
        return "250 Message accepted for delivery"


class SmtpSink:
    def __init__(self, port: int | None = None, tls: bool = False, host: str = "127.0.0.1", idle_timeout: float | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.sessions: set[object] = set()
        self.tls_flags: list[bool] = []
        self.reject_recipients: set[str] = set()
        self.defer_data = 0
        self.deferred = 0  # DATA commands answered 451 by `defer_data`: a test shows its fault fired
        self.rcpt_delay = 0.0
        self.rcpt_started = threading.Event()
        self.lock = threading.Lock()
        self.script: list[str] = []
        self.refusals: list[tuple[str, str, float]] = []
        self.accepted_at: list[float] = []
        self.cafile: Path | None = None
        options: dict[str, object] = {}
        if tls:
            self._dir = tempfile.TemporaryDirectory(prefix="egoejo-smtp-")
            cert, key = self_signed_certificate(Path(self._dir.name))
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            options = {"tls_context": context, "require_starttls": True}
            self.cafile = cert
        if idle_timeout is not None:  # the server closes a session idle this long, as real ones do
            options["timeout"] = idle_timeout
        self._controller = Controller(_Handler(self), hostname=host, port=self.port, **options)

    def script_faults(self, *faults: str) -> None:
        with self.lock:
            self.script.extend(faults)

    def _take_fault(self, kinds: tuple[str, ...]) -> str | None:
        with self.lock:
            if self.script and self.script[0] in kinds:
                return self.script.pop(0)
        return None

    def _note(self, recipient: str, fault: str) -> None:
        with self.lock:
            self.refusals.append((recipient, fault, time.monotonic()))

    def _keep(self, session, envelope) -> None:  # type: ignore[no-untyped-def]
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        with self.lock:
            self.sessions.add(session.peer)
            self.messages.append((list(envelope.rcpt_tos), message))
            self.accepted_at.append(time.monotonic())
            self.tls_flags.append(session.ssl is not None)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def recipients(self) -> list[str]:
        with self.lock:
            return [rcpt for rcpts, _ in self.messages for rcpt in rcpts]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[list[str], EmailMessage]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        with self.lock:
            raise AssertionError(f"expected {count} mails at the SMTP sink, got {len(self.messages)}")


def point_mail_at(settings, sink: SmtpSink) -> None:  # type: ignore[no-untyped-def]
    """Send the project's mail to `sink` (pytest-django's `settings` fixture)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = sink.port
    settings.EMAIL_USE_TLS = sink.cafile is not None
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 10
