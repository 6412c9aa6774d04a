"""Development mail: one .eml file per message in var/mail/, the newest sorting last."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

from django.core.mail import EmailMessage, get_connection


def test_one_eml_file_per_message_newest_last_even_over_one_connection(tmp_path: Path):
    tmp_path = tmp_path / "mail"
    connection = get_connection("app.email_backends.EmlFileBackend", file_path=str(tmp_path))
    # A worker keeps one connection for many messages: each must still be a file of its own.
    with connection:
        for n, to in enumerate(["ana@example.org", "bob@example.org", "ana@example.org"]):
            EmailMessage(f"Message {n}", "Body", "from@example.org", [to], connection=connection).send()
    EmailMessage("Last", "Body", "from@example.org", ["zed@example.org"], connection=connection).send()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 4 and all(name.endswith(".eml") for name in files)
    subjects = [message_from_bytes((tmp_path / name).read_bytes(), policy=policy.default)["Subject"] for name in files]
    assert subjects == ["Message 0", "Message 1", "Message 2", "Last"]
    assert files[0].endswith("-ana@example.org.eml") and files[-1].endswith("-zed@example.org.eml")


def test_development_email_url_uses_it():
    from app.settings.mail import email_settings_from_url

    assert email_settings_from_url("file:///", tmp := Path("/srv/mail"))["EMAIL_BACKEND"] == "app.email_backends.EmlFileBackend"
    assert email_settings_from_url("file:///", tmp)["EMAIL_FILE_PATH"] == "/srv/mail"
