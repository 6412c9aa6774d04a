"""Development mail: one .eml file per message, named so that the newest sorts last.

Django's file backend appends every message of a connection to one file per connection, and a
worker keeps its connection: var/mail/ held one file per worker process, many mails in each.
Here each message is its own RFC 5322 file (any mail client opens it), named
`<UTC time to the microsecond>-<pid>-<n>-<first recipient>.eml`, so `ls var/mail | tail -1`
is the latest mail and the welcome mail to ana@example.org is found by name.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from django.core.mail.backends import filebased
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]+")
_counter = itertools.count(1)


def eml_name(message: EmailMessage, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S.%fZ")
    recipient = _UNSAFE.sub("_", (message.recipients() or ["no-recipient"])[0])[:80]
    return f"{stamp}-{os.getpid()}-{next(_counter):06d}-{recipient}.eml"


class EmlFileBackend(filebased.EmailBackend):
    """EMAIL_URL=file:///path (development's default): one .eml per message in EMAIL_FILE_PATH."""

    def open(self) -> bool:
        return False  # nothing held open: each message is written and closed on its own

    def close(self) -> None:
        return None

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        sent = 0
        directory = Path(self.file_path)
        for message in email_messages:
            try:
                name = eml_name(message)
                partial = directory / f".{name}.part"  # hidden until complete, then renamed
                partial.write_bytes(message.message().as_bytes())
                os.replace(partial, directory / name)
            except Exception:
                if not self.fail_silently:
                    raise
                continue
            sent += 1
        return sent


class NoMailBackend(BaseEmailBackend):
    """EMAIL_URL=none://: a process that sends no mail (web, scheduler, dashboard in compose) and so
    holds no SMTP password. Sending from it is a bug: it raises, never drops a message silently."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        raise RuntimeError("This process has EMAIL_URL=none://: mail is sent by the workers (app/jobs/emails.py).")
