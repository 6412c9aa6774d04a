"""The chaos campaign's load (benchmarks/chaos/load.py) confirms its members as a member would:
from the link in the mail the SMTP sink received."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model

from app.services import account_tokens
from benchmarks.chaos.load import PASSWORD, mailed_confirmation

pytestmark = pytest.mark.django_db


def test_the_load_reads_a_valid_confirmation_token_from_the_sink(client, smtp_sink, run_worker, django_capture_on_commit_callbacks):
    body = {"username": "m1x0x0", "email": "m1x0x0@example.org", "password": PASSWORD, "language": "en"}
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/api/auth/register/", json.dumps(body), content_type="application/json").status_code == 202
    stack = SimpleNamespace(sink=smtp_sink)
    assert mailed_confirmation(stack, "m1x0x0@example.org") is None  # nothing sent yet
    run_worker("emails")
    smtp_sink.wait_for(1)
    token = mailed_confirmation(stack, "m1x0x0@example.org")
    assert account_tokens.user_for(account_tokens.confirmation_tokens, token) == get_user_model().objects.get(username="m1x0x0")
