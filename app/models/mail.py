from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connections, models, router
from django.utils import timezone

from app.queueing.row_inserts import insert_rows


class MemberPreferences(models.Model):
    """Per-member settings that the platform's mail and pages follow."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="preferences"
    )
    language = models.CharField(max_length=8, choices=settings.LANGUAGES, default="fr")

    def __str__(self) -> str:
        return f"Preferences of user {self.user_id}"


class SentMail(models.Model):
    """One row per mail handed to the SMTP server: written before DATA, marked sent after the 250.

    A row still `attempting` means the outcome is unknown: the sender died (or its database
    went away) between DATA and the record of the server's answer. What a later run does with
    such a row is the message kind's policy (app.services.mail.delivery.Delivery): at-most-once kinds
    treat it as sent, at-least-once kinds send again under the same Message-ID.
    """

    class State(models.TextChoices):
        ATTEMPTING = "attempting"  # handed to the server, its acceptance not recorded (yet)
        SENT = "sent"  # the server's 250 recorded

    message_id = models.CharField(max_length=255, unique=True)
    job_id = models.CharField(max_length=64, db_index=True, blank=True)
    recipient = models.CharField(max_length=254)
    subject = models.CharField(max_length=255, blank=True)
    sent_at = models.DateTimeField(auto_now_add=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.SENT)
    attempts = models.PositiveIntegerField(default=1)  # sends under this Message-ID (>1: the uncertain window, re-sent)

    class Meta:
        ordering = ["-sent_at"]

    def __str__(self) -> str:
        return f"{self.recipient}: {self.subject}"

    @classmethod
    def _sql(cls) -> tuple[Any, str, dict[str, str]]:
        connection = connections[router.db_for_write(cls)]
        quote = connection.ops.quote_name
        columns = {f.name: quote(f.column) for f in cls._meta.concrete_fields}
        return connection, quote(cls._meta.db_table), columns

    @classmethod
    def claim(cls, message_id: str, job_id: str, recipient: str, subject: str) -> str | None:
        """Write an `attempting` row before the mail goes out (committed at once outside a transaction).

        Returns None when the row is new, else the state of the row already there (an earlier
        attempt's, or an overlapping run's), which is left as it is.
        """
        connection, table, c = cls._sql()
        names = ("message_id", "job_id", "recipient", "subject", "sent_at", "state", "attempts")
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(c[n] for n in names)}) VALUES ({', '.join(['%s'] * len(names))}) "
                f"ON CONFLICT ({c['message_id']}) DO NOTHING",
                [message_id, job_id, recipient, subject[:255], connection.ops.adapt_datetimefield_value(timezone.now()),
                 cls.State.ATTEMPTING.value, 1],
            )
            if cursor.rowcount == 1:
                return None
            cursor.execute(f"SELECT {c['state']} FROM {table} WHERE {c['message_id']} = %s", [message_id])
            row = cursor.fetchone()
        return row[0] if row else None

    @classmethod
    def attempt_again(cls, message_id: str) -> None:
        """An at-least-once kind sends again under an `attempting` row: count the attempt."""
        connection, table, c = cls._sql()
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET {c['attempts']} = {c['attempts']} + 1 WHERE {c['message_id']} = %s", [message_id])

    @classmethod
    def mark_sent(cls, message_id: str, job_id: str, recipient: str, subject: str) -> None:
        """Record the server's 250: the row becomes `sent`, and is written again if it is gone.

        Gone: an overlapping run of the same job (a job pushed twice) had its attempt refused and
        released the row while this run's mail went out; without the row, a later retry of
        that run would send the mail a second time.
        """
        connection, table, c = cls._sql()
        names = ("message_id", "job_id", "recipient", "subject", "sent_at", "state", "attempts")
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(c[n] for n in names)}) VALUES ({', '.join(['%s'] * len(names))}) "
                f"ON CONFLICT ({c['message_id']}) DO UPDATE SET {c['state']} = excluded.{c['state']}, "
                f"{c['sent_at']} = excluded.{c['sent_at']}",
                [message_id, job_id, recipient, subject[:255], connection.ops.adapt_datetimefield_value(timezone.now()),
                 cls.State.SENT.value, 1],
            )

    @classmethod
    def release(cls, message_id: str) -> None:
        """The server refused the mail (or it never reached DATA): nothing went out, a retry may send."""
        connection, table, c = cls._sql()
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE {c['message_id']} = %s AND {c['state']} = %s",
                [message_id, cls.State.ATTEMPTING.value],
            )

    @classmethod
    def record(cls, message_id: str, job_id: str, recipient: str, subject: str) -> None:
        """Record an accepted mail; a row already there (an overlapping run's) is left as it is."""
        insert_rows(
            cls,
            ("message_id", "job_id", "recipient", "subject", "sent_at", "state", "attempts"),
            [(message_id, job_id, recipient, subject[:255], timezone.now(), cls.State.SENT.value, 1)],
            ignore_conflicts=True,
        )
