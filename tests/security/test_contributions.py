"""Contributions, attacked: amounts out of bounds or not amounts at all, projects that take none,
a member contributing in a loop, a client sending the same contribution twice.

Each refusal is a JSON 4xx in the request's language, records nothing and queues nothing.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.test import Client

from app.models import Contribution, Project
from app.queueing.models import BackgroundJob
from tests.factories import make_project, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def member_client() -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(make_user("payer"))
    return client


def post(client: Client, project_id: int, body: object, raw: bytes | None = None, **headers: str):  # type: ignore[no-untyped-def]
    data = raw if raw is not None else json.dumps(body)
    return client.post(f"/api/projects/{project_id}/contributions/", data=data, content_type="application/json", **headers)


NOT_AMOUNTS: list[bytes] = [
    b'{"amount": "NaN"}', b'{"amount": "-NaN"}', b'{"amount": "sNaN"}', b'{"amount": "Infinity"}', b'{"amount": "-inf"}',
    b'{"amount": NaN}', b'{"amount": Infinity}', b'{"amount": true}', b'{"amount": false}', b'{"amount": null}',
    b'{"amount": ["5"]}', b'{"amount": {"value": 5}}', b'{"amount": ""}', b'{"amount": "  "}', b'{"amount": "5 EUR"}',
    b'{"amount": "5,00"}', b'{"amount": "0x10"}', b'{"amount": "1e999999999"}', b'{"amount": 1e400}',
    b'{"amount": "' + b"9" * 100_000 + b'"}', b'{"amount": "5\\u0000"}', b'{}', b'{"montant": "5"}',
]


def test_what_is_not_an_amount_is_a_400_and_records_nothing(member_client: Client, settings):
    settings.THROTTLE_CONTRIBUTIONS_PER_USER = "1000/hour"
    project = make_project()
    failures = []
    for raw in NOT_AMOUNTS:
        response = post(member_client, project.pk, None, raw=raw)
        if response.status_code != 400 or "error" not in response.json():
            failures.append(f"{raw[:50]!r}: {response.status_code}")
    assert not failures, failures
    assert not Contribution.objects.exists()
    assert not BackgroundJob.objects.exists()


@pytest.mark.parametrize("amount", ["0", "0.00", "0.001", "-5", "0.99", "10000.01", "1000000", "999999999999.99", 1e308, -1])
def test_an_amount_outside_the_default_bounds_is_refused(member_client: Client, amount: object):
    response = post(member_client, make_project().pk, {"amount": amount})
    assert response.status_code == 400, response.content
    assert response.json()["fields"]["amount"] == ["Le montant doit être compris entre 1,00 et 10000,00."]
    assert not Contribution.objects.exists()


def test_the_bounds_come_from_the_settings_and_are_named_in_either_language(member_client: Client, settings):
    settings.CONTRIBUTION_MIN_AMOUNT, settings.CONTRIBUTION_MAX_AMOUNT = Decimal("5.00"), Decimal("50.00")
    project = make_project()
    statuses = {amount: post(member_client, project.pk, {"amount": amount}).status_code for amount in ("4.99", "5", 50, "50.00", "50.01", 51)}
    assert statuses == {"4.99": 400, "5": 201, 50: 201, "50.00": 201, "50.01": 400, 51: 400}
    english = post(member_client, project.pk, {"amount": "1"}, HTTP_ACCEPT_LANGUAGE="en").json()
    assert english["fields"]["amount"] == ["The amount must be between 5.00 and 50.00."]
    assert sorted(Contribution.objects.values_list("amount", flat=True)) == [Decimal("5.00"), Decimal("50.00"), Decimal("50.00")]


@pytest.mark.parametrize("status", ["closed", "archived"])
def test_a_project_that_is_not_open_refuses_contributions_with_a_409(member_client: Client, status: str):
    project = Project.objects.create(title="Fini", slug="fini", status=status)
    response = post(member_client, project.pk, {"amount": "20"})
    assert response.status_code == 409
    assert response.json()["error"] == "Ce projet ne reçoit plus de contributions."
    assert post(member_client, project.pk, {"amount": "20"}, HTTP_ACCEPT_LANGUAGE="en").json()["error"] == (
        "This project does not take contributions any more."
    )
    assert not Contribution.objects.exists() and not BackgroundJob.objects.exists()


def test_an_unpublished_project_is_unknown_to_the_api(member_client: Client):
    draft = Project.objects.create(title="Brouillon", slug="brouillon", status="draft")
    shown = make_project("ouvert")
    assert post(member_client, draft.pk, {"amount": "20"}).status_code == 404
    listed = member_client.get("/api/projects/").json()["projects"]
    assert [(p["slug"], p["status"]) for p in listed] == [("ouvert", "open")]
    assert not Contribution.objects.filter(project=draft).exists()
    assert shown.status == "open"  # the default: projects created before the status existed stay open


def test_a_member_contributing_in_a_loop_is_throttled_per_member(member_client: Client, settings):
    settings.THROTTLE_CONTRIBUTIONS_PER_USER = "3/hour"
    project = make_project()
    statuses = [post(member_client, project.pk, {"amount": "10"}).status_code for _ in range(5)]
    assert statuses == [201, 201, 201, 429, 429]
    refused = post(member_client, project.pk, {"amount": "10"})
    assert int(refused["Retry-After"]) > 0 and refused.json()["retry_after"] > 0
    assert Contribution.objects.count() == 3
    other = Client()
    other.force_login(make_user("someone-else"))
    assert post(other, project.pk, {"amount": "10"}).status_code == 201


def test_the_same_idempotency_key_records_one_contribution(member_client: Client):
    project = make_project()
    first = post(member_client, project.pk, {"amount": "12.5"}, HTTP_IDEMPOTENCY_KEY="order-42")
    again = post(member_client, project.pk, {"amount": "12.50"}, HTTP_IDEMPOTENCY_KEY="order-42")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Contribution.objects.count() == 1
    reused = post(member_client, project.pk, {"amount": "99"}, HTTP_IDEMPOTENCY_KEY="order-42")
    assert reused.status_code == 422 and reused.json()["error"]
    other_project = make_project("autre")
    assert post(member_client, other_project.pk, {"amount": "12.50"}, HTTP_IDEMPOTENCY_KEY="order-42").status_code == 422
    # Another member's key is theirs.
    other = Client()
    other.force_login(make_user("someone-else"))
    assert post(other, project.pk, {"amount": "12.5"}, HTTP_IDEMPOTENCY_KEY="order-42").status_code == 201
    assert Contribution.objects.count() == 2


@pytest.mark.parametrize("key", ["", "x" * 65, "a b", "clé", "k\x00", "<script>"])
def test_a_malformed_idempotency_key_is_a_400(member_client: Client, key: str):
    response = post(member_client, make_project().pk, {"amount": "10"}, HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 400 and "idempotency_key" in response.json()["fields"]
    assert not Contribution.objects.exists()
