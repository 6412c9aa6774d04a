from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class PendingAccount(models.Model):
    """An account that has not proved its address yet: a row exists only until the link mailed to
    the address is followed (app.services.accounts.confirm). Its user is inactive meanwhile.

    Telling it apart from an account an administrator deactivated (no row) is what lets a new
    registration replace it or, past ACCOUNT_TOKEN_MAX_AGE, take its username: an unconfirmed
    registration never holds an address or a name against its owner (tests/security/test_account_proof.py).
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="pending")
    # Reset by every registration that replaces this one: the links mailed before it die with it.
    registered_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"Unconfirmed account {self.user_id}"
