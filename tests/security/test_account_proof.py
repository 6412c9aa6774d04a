"""Accounts prove their address, and strangers can neither learn which addresses are members nor
lock anyone out: attacked through the real views, a real worker, a real SMTP sink and the real
throttle counters in Redis.

- A new account is inactive until the link mailed to it is followed (with the password chosen);
  the link works once and expires; GET never changes anything.
- An unconfirmed registration never blocks the address's owner or, past its links' validity, a username.
- Password reset by mail: single-use, expiring links, Django's validators; asking tells nothing.
- Login: an unknown name, a wrong password and an unconfirmed account get one answer.
- Failed logins slow the guesser down, per (account, client) and per account, never the owner's client.
- THROTTLE_TRUSTED_PROXIES is in every example env file; behind the proxy, clients are counted apart.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from tests.factories import make_user

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"  # tests.factories.make_user's
CHOSEN = "a-long-pass-phrase-42"
BASE = "https://egoejo.test"  # tests/settings.py's PUBLIC_BASE_URL
LINK = re.compile(r"https?://[^\s\"<>]+/account/(confirm|reset)/([^/\s\"<>]+)/")


def post_json(client, url: str, body: dict, **extra):  # type: ignore[no-untyped-def]
    return client.post(url, data=json.dumps(body), content_type="application/json", **extra)


def register(client, username: str, email: str | None = None, password: str = CHOSEN, **extra):  # type: ignore[no-untyped-def]
    body = {"username": username, "email": email or f"{username}@example.org", "password": password}
    return post_json(client, "/api/auth/register/", body, **extra)


def login(client, username: str, password: str, **extra):  # type: ignore[no-untyped-def]
    return post_json(client, "/api/auth/login/", {"username": username, "password": password}, **extra)


def links(message) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    """(kind, token, whole link) of each link in a mail's plain-text part."""
    text = message.get_body(("plain",)).get_content()
    return [(m.group(1), m.group(2), m.group(0)) for m in LINK.finditer(text)]


def mailed_token(smtp_sink, run_worker, address: str, kind: str, count: int = 1) -> str:  # type: ignore[no-untyped-def]
    """Run the mail jobs and return the token of the newest `kind` link mailed to `address`."""
    run_worker("emails")
    messages = smtp_sink.wait_for(count)
    found = [link for rcpts, message in messages if address in rcpts for link in links(message) if link[0] == kind]
    assert found, f"no {kind} link mailed to {address}: {[(r, m['Subject']) for r, m in messages]}"
    return found[-1][1]


def shape(response) -> tuple:  # type: ignore[no-untyped-def]
    return response.status_code, response.content, sorted(response.cookies)


# --- the address proved ---------------------------------------------------------------------


def test_a_new_account_cannot_log_in_before_its_address_is_confirmed(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert register(client, "ana").status_code == 202
    answer = login(client, "ana", CHOSEN)
    assert answer.status_code == 400, answer.content
    assert "_auth_user_id" not in client.session
    assert not get_user_model().objects.get(username="ana").is_active


def test_the_mailed_link_confirms_the_account_once(client, smtp_sink, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        register(client, "ana")
    token = mailed_token(smtp_sink, run_worker, "ana@example.org", "confirm")
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = post_json(client, "/api/auth/confirm/", {"token": token, "password": CHOSEN})
    assert confirmed.status_code == 200, confirmed.content
    assert confirmed.json()["username"] == "ana" and client.session["_auth_user_id"] == str(confirmed.json()["id"])
    client.logout()
    assert login(client, "ana", CHOSEN).status_code == 200
    client.logout()
    again = post_json(client, "/api/auth/confirm/", {"token": token, "password": CHOSEN})
    assert again.status_code == 400 and "_auth_user_id" not in client.session
    # The welcome mail follows the confirmation.
    run_worker("emails")
    assert smtp_sink.recipients().count("ana@example.org") == 2


def test_the_confirmation_needs_the_password_chosen_at_registration(client, smtp_sink, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        register(client, "ana")
    token = mailed_token(smtp_sink, run_worker, "ana@example.org", "confirm")
    wrong = post_json(client, "/api/auth/confirm/", {"token": token, "password": "not-the-one-chosen"})
    assert wrong.status_code == 400
    assert not get_user_model().objects.get(username="ana").is_active
    assert post_json(client, "/api/auth/confirm/", {"token": token, "password": CHOSEN}).status_code == 200


def test_an_expired_confirmation_link_does_nothing(client, smtp_sink, run_worker, settings, monkeypatch, django_capture_on_commit_callbacks):
    from app.services import account_tokens

    with django_capture_on_commit_callbacks(execute=True):
        register(client, "ana")
    token = mailed_token(smtp_sink, run_worker, "ana@example.org", "confirm")
    later = datetime.now() + timedelta(seconds=settings.ACCOUNT_TOKEN_MAX_AGE + 1)
    monkeypatch.setattr(account_tokens.confirmation_tokens, "_now", lambda: later)
    assert post_json(client, "/api/auth/confirm/", {"token": token, "password": CHOSEN}).status_code == 400
    assert not get_user_model().objects.get(username="ana").is_active


@pytest.mark.parametrize("token", ["", "nonsense", "MQ.abc-def", "x" * 5000, "Zm9v.1-2"])
def test_a_forged_confirmation_token_is_a_400(client, token: str):
    make_user("ana")
    answer = post_json(client, "/api/auth/confirm/", {"token": token, "password": PASSWORD})
    assert answer.status_code == 400 and "_auth_user_id" not in client.session


def test_the_link_opens_a_page_whose_get_changes_nothing(client, smtp_sink, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        register(client, "ana")
    run_worker("emails")
    [(_, message)] = smtp_sink.wait_for(1)
    [(kind, token, link)] = links(message)
    assert link.startswith(BASE + "/account/confirm/")  # PUBLIC_BASE_URL, not the request's Host (testserver)
    page = client.get(f"/account/confirm/{token}/")
    assert page.status_code == 200 and b'type="password"' in page.content and b'method="post"' in page.content
    assert page["Referrer-Policy"] == "no-referrer"
    client.get(f"/account/confirm/{token}/")
    assert not get_user_model().objects.get(username="ana").is_active  # GET, twice: nothing changed
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(f"/account/confirm/{token}/", {"password": CHOSEN})
    assert done.status_code == 200
    assert get_user_model().objects.get(username="ana").is_active


def test_no_token_travels_through_redis(client, smtp_sink, run_worker, redis_conn, django_capture_on_commit_callbacks):
    """The job carries the account's id; the link is made when the mail is sent."""
    with django_capture_on_commit_callbacks(execute=True):
        job_id = register(client, "ana").json()["job_id"]
    stored = b"".join(value for value in redis_conn.hgetall(f"rq:job:{job_id}").values())
    run_worker("emails")
    token = mailed_token(smtp_sink, run_worker, "ana@example.org", "confirm")
    assert token.split(".", 1)[1].encode() not in stored and b"/account/" not in stored


# --- an unconfirmed registration never blocks the owner ---------------------------------------


def test_a_squatter_cannot_hold_an_address_against_its_owner(client, smtp_sink, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        squatted = register(client, "squatter", "victim@example.org", password="squatters-own-pass-99")
        owned = register(client, "victim", "victim@example.org")
    assert shape(squatted)[0] == shape(owned)[0] == 202 and squatted.json().keys() == owned.json().keys()
    assert login(client, "squatter", "squatters-own-pass-99").status_code == 400
    run_worker("emails")
    tokens = [link[1] for rcpts, message in smtp_sink.wait_for(2) for link in links(message)]
    assert len(tokens) == 2  # two confirmation links, both to the address: the squatter got nothing
    assert smtp_sink.recipients() == ["victim@example.org", "victim@example.org"]
    first, second = tokens
    # The squatter's registration was replaced: its link is dead, whatever password comes with it.
    assert post_json(client, "/api/auth/confirm/", {"token": first, "password": "squatters-own-pass-99"}).status_code == 400
    assert post_json(client, "/api/auth/confirm/", {"token": second, "password": CHOSEN}).status_code == 200
    client.logout()
    assert login(client, "victim", CHOSEN).status_code == 200
    assert get_user_model().objects.filter(email__iexact="victim@example.org").count() == 1
    assert not get_user_model().objects.filter(username="squatter").exists()


def test_a_username_held_by_an_unconfirmed_account_is_freed_when_its_links_expire(
    client, smtp_sink, run_worker, settings, django_capture_on_commit_callbacks
):
    from app.models import PendingAccount

    with django_capture_on_commit_callbacks(execute=True):
        register(client, "popular", "squatter@example.org")
        register(client, "popular", "owner@example.org")  # still held: the notice "username taken"
    assert not get_user_model().objects.filter(email="owner@example.org").exists()
    PendingAccount.objects.update(registered_at=PendingAccount.objects.get().registered_at - timedelta(seconds=settings.ACCOUNT_TOKEN_MAX_AGE + 1))
    with django_capture_on_commit_callbacks(execute=True):
        assert register(client, "popular", "owner@example.org").status_code == 202
    user = get_user_model().objects.get(username="popular")
    assert user.email == "owner@example.org" and not get_user_model().objects.filter(email="squatter@example.org").exists()
    token = mailed_token(smtp_sink, run_worker, "owner@example.org", "confirm", count=2)  # the stale one's: skipped
    assert post_json(client, "/api/auth/confirm/", {"token": token, "password": CHOSEN}).status_code == 200


def test_registration_answers_the_same_for_new_taken_and_unconfirmed_addresses(
    client, smtp_sink, run_worker, django_capture_on_commit_callbacks
):
    make_user("member", email="member@example.org")
    with django_capture_on_commit_callbacks(execute=True):
        register(client, "pending", "pending@example.org")
        answers = [
            register(client, "fresh", "fresh@example.org"),
            register(client, "someone", "MEMBER@example.org"),
            register(client, "pending2", "pending@example.org"),
            register(client, "member", "other@example.org"),
        ]
    assert len({(a.status_code, tuple(sorted(a.json())), a.json()["detail"], tuple(sorted(a.cookies))) for a in answers}) == 1
    run_worker("emails")
    mails = {rcpts[0]: message for rcpts, message in smtp_sink.wait_for(5)}
    assert [kind for kind, _, _ in links(mails["member@example.org"])] == ["reset"]  # "was it you? set a new password"
    assert [kind for kind, _, _ in links(mails["fresh@example.org"])] == ["confirm"]
    assert links(mails["other@example.org"]) == []  # "that username is taken"


# --- password reset ---------------------------------------------------------------------------


def test_a_password_is_reset_by_mail_once(client, smtp_sink, run_worker, django_capture_on_commit_callbacks):
    make_user("ana", email="ana@example.org")
    with django_capture_on_commit_callbacks(execute=True):
        member = post_json(client, "/api/auth/password-reset/", {"email": "ANA@example.org"})
        stranger = post_json(client, "/api/auth/password-reset/", {"email": "nobody@example.org"})
    assert member.status_code == 202 and shape(member) == shape(stranger)
    token = mailed_token(smtp_sink, run_worker, "ana@example.org", "reset")
    assert smtp_sink.recipients() == ["ana@example.org"]  # nothing to an address no account uses

    weak = post_json(client, "/api/auth/password-reset/confirm/", {"token": token, "password": "123"})
    assert weak.status_code == 400 and weak.json()["fields"]["password"]  # Django's validators, readable
    done = post_json(client, "/api/auth/password-reset/confirm/", {"token": token, "password": "a-brand-new-phrase-77"})
    assert done.status_code == 200, done.content
    assert login(client, "ana", PASSWORD).status_code == 400
    assert login(client, "ana", "a-brand-new-phrase-77").status_code == 200
    client.logout()
    reused = post_json(client, "/api/auth/password-reset/confirm/", {"token": token, "password": "yet-another-phrase-88"})
    assert reused.status_code == 400 and "fields" not in reused.json()
    assert login(client, "ana", "a-brand-new-phrase-77").status_code == 200


def test_an_expired_reset_link_does_nothing(client, smtp_sink, run_worker, settings, monkeypatch, django_capture_on_commit_callbacks):
    from app.services import account_tokens

    make_user("ana", email="ana@example.org")
    with django_capture_on_commit_callbacks(execute=True):
        post_json(client, "/api/auth/password-reset/", {"email": "ana@example.org"})
    token = mailed_token(smtp_sink, run_worker, "ana@example.org", "reset")
    later = datetime.now() + timedelta(seconds=settings.ACCOUNT_TOKEN_MAX_AGE + 1)
    monkeypatch.setattr(account_tokens.reset_tokens, "_now", lambda: later)
    assert post_json(client, "/api/auth/password-reset/confirm/", {"token": token, "password": "a-brand-new-phrase-77"}).status_code == 400
    assert login(client, "ana", PASSWORD).status_code == 200


def test_a_reset_is_not_mailed_to_an_unconfirmed_account(client, smtp_sink, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        register(client, "ana")
    run_worker("emails")
    smtp_sink.wait_for(1)  # the confirmation
    with django_capture_on_commit_callbacks(execute=True):
        assert post_json(client, "/api/auth/password-reset/", {"email": "ana@example.org"}).status_code == 202
    run_worker("emails")
    assert smtp_sink.recipients() == ["ana@example.org"]


# --- login tells nothing --------------------------------------------------------------------


def test_login_answers_alike_for_an_unknown_name_a_wrong_password_and_an_unconfirmed_account(client, django_capture_on_commit_callbacks):
    """Status, body and cookies; the timing of the three (one password hash each: Django's
    ModelBackend hashes for an unknown name too) is measured in docs/operations.md, not asserted."""
    make_user("member")
    with django_capture_on_commit_callbacks(execute=True):
        register(client, "pending")
    unknown = login(client, "nobody", CHOSEN)
    wrong = login(client, "member", "wrong-password")
    unconfirmed = login(client, "pending", CHOSEN)  # its right password
    assert unknown.status_code == 400
    assert shape(unknown) == shape(wrong) == shape(unconfirmed)


# --- throttling: slow down, never lock out ----------------------------------------------------


def test_a_stranger_cannot_lock_the_superuser_out_of_the_admin(client):
    from django.test import Client

    get_user_model().objects.create_superuser("boss", "boss@example.org", PASSWORD)
    stranger = Client()
    for n in range(40):
        stranger.post("/admin/login/", {"username": "boss", "password": f"guess-{n}"}, REMOTE_ADDR="203.0.113.9")
    refused = stranger.post("/admin/login/?next=/admin/", {"username": "boss", "password": PASSWORD}, REMOTE_ADDR="203.0.113.9")
    assert refused.status_code == 200 and "_auth_user_id" not in stranger.session  # the guesser: slowed down
    owner = client.post("/admin/login/?next=/admin/", {"username": "boss", "password": PASSWORD}, REMOTE_ADDR="198.51.100.7")
    assert owner.status_code == 302 and owner["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_strangers_hammering_from_many_addresses_slow_down_only_clients_the_account_does_not_know(client, settings):
    import time

    from django.test import Client

    settings.THROTTLE_LOGIN_MAX_DELAY = 2
    get_user_model().objects.create_superuser("boss", "boss@example.org", PASSWORD)
    assert login(client, "boss", PASSWORD, REMOTE_ADDR="198.51.100.7").status_code == 200  # the owner's client
    client.logout()
    botnet = Client()
    for n in range(60):  # 3 guesses from each of 20 addresses: within each (account, client) pair's free budget
        login(botnet, "boss", f"guess-{n}", REMOTE_ADDR=f"203.0.113.{n % 20}")
    assert login(client, "boss", PASSWORD, REMOTE_ADDR="198.51.100.7").status_code == 200  # never slowed down
    newcomer = Client()
    slowed = login(newcomer, "boss", PASSWORD, REMOTE_ADDR="192.0.2.50")
    assert slowed.status_code == 429 and 1 <= int(slowed["Retry-After"]) <= 2  # a delay, not a lock
    time.sleep(int(slowed["Retry-After"]) + 0.1)
    assert login(newcomer, "boss", PASSWORD, REMOTE_ADDR="192.0.2.50").status_code == 200


def test_one_client_guessing_one_account_waits_twice_as_long_after_each_failure(settings):
    from app.services.throttling import LoginAttempt, Throttled

    make_user("victim")

    def retry_after_failure(n: int) -> int:
        LoginAttempt(None, "victim").failed()
        try:
            LoginAttempt(None, "victim").check()
        except Throttled as exc:
            return exc.retry_after
        return 0

    waits = [retry_after_failure(n) for n in range(1, 15)]
    assert waits[:4] == [0, 0, 0, 0]  # THROTTLE_LOGIN_FAILURES_PER_CLIENT_ACCOUNT: 5 free
    assert waits[4:10] == [1, 2, 4, 8, 16, 32]
    assert max(waits) <= settings.THROTTLE_LOGIN_MAX_DELAY


def test_behind_trusted_proxies_two_clients_are_counted_apart(client, settings):
    from django.test import Client

    settings.THROTTLE_TRUSTED_PROXIES = 1
    for n in range(30):
        make_user(f"member{n}")
    first, second = Client(), Client()
    proxy = {"REMOTE_ADDR": "10.0.0.2"}  # both reach the web through the same proxy
    statuses = [login(first, f"member{n}", "guess", HTTP_X_FORWARDED_FOR="203.0.113.1", **proxy).status_code for n in range(25)]
    assert statuses[:20] == [400] * 20 and set(statuses[20:]) == {429}
    assert login(second, "member0", PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.2", **proxy).status_code == 200


def test_every_example_env_file_says_how_many_proxies_to_trust():
    """Every example env file the web reads (development's, and the web service's in compose)."""
    examples = [ROOT / ".env.example", ROOT / "deploy" / "env" / "web.env.example"]
    for path in examples:
        assert re.search(r"^THROTTLE_TRUSTED_PROXIES=\d", path.read_text(), re.MULTILINE), f"{path.relative_to(ROOT)} lacks THROTTLE_TRUSTED_PROXIES"
