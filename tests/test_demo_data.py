"""manage.py demo_data: a newcomer's fresh stack gets open projects; a second run creates nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from app.models.projects import Project


@pytest.mark.django_db
def test_demo_data_creates_open_projects_once():
    out = StringIO()
    call_command("demo_data", stdout=out)
    assert Project.objects.filter(status=Project.Status.OPEN).count() == 3
    assert "3 created" in out.getvalue()
    call_command("demo_data", stdout=(again := StringIO()))
    assert Project.objects.count() == 3
    assert "0 created, 3 already there" in again.getvalue()


@pytest.mark.django_db
def test_demo_data_creates_an_active_member_who_can_log_in_once(client):
    call_command("demo_data", "--member", "demo:demo-password-123", stdout=StringIO())
    call_command("demo_data", "--member", "demo:another-password", stdout=StringIO())
    member = get_user_model().objects.get(username="demo")
    assert member.is_active and member.check_password("demo-password-123")
    assert client.login(username="demo", password="demo-password-123")
