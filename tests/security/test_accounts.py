"""Registration and login, attacked: guessing passwords, flooding, enumerating members, and
putting one's own text into mail headers or into a row that breaks a batch."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from app.models import MemberPreferences
from app.services.mail import batch_sending as mail_bulk
from tests.factories import make_user

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"  # tests.factories.make_user's
PHISHING = "your account is suspended - confirm your card at https://egoejo-billing.example.net"


def post_json(client, url: str, body: dict, **extra):  # type: ignore[no-untyped-def]
    return client.post(url, data=json.dumps(body), content_type="application/json", **extra)


def registration(username: str, email: str | None = None, **extra: str) -> dict[str, str]:
    return {"username": username, "email": email or f"{username}@example.org", "password": "a-long-pass-phrase-42", **extra}


def assert_throttled(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 429, response.content
    assert int(response["Retry-After"]) > 0
    body = response.json()
    assert body["retry_after"] == int(response["Retry-After"]) and str(body["retry_after"]) in body["error"]


def test_guessing_a_password_is_locked_out_before_the_right_guess(client):
    make_user("victim")
    answers = [post_json(client, "/api/auth/login/", {"username": "victim", "password": f"guess-{n}"}) for n in range(30)]
    assert {a.status_code for a in answers[:5]} == {400}
    right = post_json(client, "/api/auth/login/", {"username": "victim", "password": PASSWORD})
    assert_throttled(right)
    assert "_auth_user_id" not in client.session


def test_guessing_across_accounts_from_one_address_is_locked_out_forged_forwarded_for_or_not(client):
    for n in range(30):
        make_user(f"member{n}")
    statuses = [
        post_json(
            client, "/api/auth/login/", {"username": f"member{n}", "password": "guess"},
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",  # no proxy is trusted: a header the attacker writes
        ).status_code
        for n in range(30)
    ]
    assert statuses[:20] == [400] * 20
    assert set(statuses[20:]) == {429}


def test_flooding_registrations_from_one_address_is_throttled(client):
    statuses = [post_json(client, "/api/auth/register/", registration(f"bot{n}")).status_code for n in range(12)]
    assert statuses[:10] == [202] * 10
    assert_throttled(post_json(client, "/api/auth/register/", registration("bot99")))
    assert get_user_model().objects.filter(username__startswith="bot").count() == 10


def _shape(response) -> tuple:  # type: ignore[no-untyped-def]
    body = response.json()
    return response.status_code, sorted(body), body.get("detail"), sorted(response.cookies)


def test_registration_does_not_tell_whether_an_address_or_username_is_taken(
    client, smtp_sink, run_worker, django_capture_on_commit_callbacks
):
    make_user("ana", email="ana@example.org")
    with django_capture_on_commit_callbacks(execute=True):
        fresh = post_json(client, "/api/auth/register/", registration("newcomer"))
        address_taken = post_json(client, "/api/auth/register/", registration("someone", "ANA@example.org"))
        username_taken = post_json(client, "/api/auth/register/", registration("ana", "other@example.org"))
    assert _shape(fresh) == _shape(address_taken) == _shape(username_taken)
    assert "sessionid" not in fresh.cookies  # no session either way: a cookie would tell
    assert get_user_model().objects.filter(email__iexact="ana@example.org").count() == 1
    # The owner of the address learns it, by mail; the registrant learns nothing.
    run_worker("emails")
    by_recipient = {rcpts[0]: message for rcpts, message in smtp_sink.wait_for(3)}
    assert set(by_recipient) == {"newcomer@example.org", "ana@example.org", "other@example.org"}
    assert "ana" in by_recipient["ana@example.org"].get_body(("plain",)).get_content()


def test_no_member_text_reaches_a_mail_subject(client, smtp_sink, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(client, "/api/auth/register/", registration("mallory", "victim@example.org", first_name=PHISHING))
    assert response.status_code in (201, 202)
    run_worker("emails")
    [(recipients, message)] = smtp_sink.wait_for(1)
    assert recipients == ["victim@example.org"]
    assert "suspended" not in message["Subject"] and "https://" not in message["Subject"]


def test_no_subject_template_uses_anything_but_the_site_name():
    subjects = sorted((ROOT / "app" / "templates").rglob("*_subject.txt"))
    assert subjects
    for path in subjects:
        variables = set(re.findall(r"{{\s*([\w.]+)", path.read_text()))
        assert variables <= {"site_name"}, f"{path.relative_to(ROOT)} puts {variables - {'site_name'}} in a Subject"


@pytest.mark.parametrize(
    "first_name", ["Eve\r\nBcc: everyone@example.org", "Eve\nX-Injected: 1", "Eve\x00", "Eve\u2028Bcc: x@example.org"]
)
def test_control_characters_in_a_name_are_refused_at_registration(client, first_name: str):
    response = post_json(client, "/api/auth/register/", registration("eve", first_name=first_name))
    assert response.status_code == 400
    assert "first_name" in response.json()["fields"]
    assert not get_user_model().objects.filter(username="eve").exists()


def test_an_unbounded_name_is_refused_not_truncated(client):
    response = post_json(client, "/api/auth/register/", registration("longname", first_name="A" * 151))
    assert response.status_code == 400
    assert "first_name" in response.json()["fields"]


def test_one_bad_row_already_in_the_database_does_not_abort_a_mail_batch(smtp_sink):
    members = []
    for name, first_name in (("first", "Ann"), ("broken", "Bad\r\nBcc: everyone@example.org"), ("last", "Zoe")):
        user = make_user(name, first_name=first_name)  # written before the edge refused such names
        MemberPreferences.objects.create(user=user, language="en")
        members.append(user.pk)
    report = mail_bulk.send_bulk("welcome", members, "batch-1")
    assert report.sent + len(report.failed) == 3
    assert {"first@example.org", "last@example.org"} <= set(smtp_sink.recipients())
    assert "everyone@example.org" not in smtp_sink.recipients()


def test_guessing_a_staff_password_on_the_admin_login_is_locked_out_too(client):
    get_user_model().objects.create_superuser("boss", "boss@example.org", PASSWORD)
    for n in range(10):
        client.post("/admin/login/", {"username": "boss", "password": f"guess-{n}"})
    response = client.post("/admin/login/?next=/admin/", {"username": "boss", "password": PASSWORD})
    assert response.status_code == 200  # the form again, not the redirect into the admin
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302  # still sent to the login page
