"""One language per answer: Accept-Language picks fr or en, French (the platform's) by default."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests.factories import make_project, make_user

pytestmark = pytest.mark.django_db

BAD_REGISTRATION = {"username": "", "email": "nope", "password": "123", "language": "de"}


def _post(client: Client, path: str, body: dict, **headers: str):  # type: ignore[no-untyped-def]
    return client.post(path, data=json.dumps(body), content_type="application/json", **headers)


@pytest.mark.parametrize("accept", [None, "fr-FR,fr;q=0.9", "de-DE,de;q=0.9", "en-GB,en;q=0.9"])
def test_every_message_of_an_answer_is_in_its_language(client, accept):
    headers = {"HTTP_ACCEPT_LANGUAGE": accept} if accept else {}
    english = accept is not None and accept.startswith("en")
    response = _post(client, "/api/auth/register/", BAD_REGISTRATION, **headers)
    assert response.status_code == 400
    assert response["Content-Language"] == ("en" if english else "fr")
    body = response.json()
    if english:
        assert body == {
            "error": "Invalid registration.",
            "fields": {
                "username": ["A username of 1 to 150 characters is required."],
                "email": ["Enter a valid e-mail address."],
                "language": ["Choose one of: en, fr."],
                "password": [
                    "This password is too short. It must contain at least 8 characters.",
                    "This password is too common.",
                    "This password is entirely numeric.",
                ],
            },
        }
    else:
        assert body == {
            "error": "Inscription invalide.",
            "fields": {
                "username": ["Un nom d’utilisateur de 1 à 150 caractères est requis."],
                "email": ["Saisissez une adresse e-mail valide."],
                "language": ["Choisissez parmi : en, fr."],
                "password": [
                    "Ce mot de passe est trop court. Il doit contenir au minimum 8 caractères.",
                    "Ce mot de passe est trop courant.",
                    "Ce mot de passe est entièrement numérique.",
                ],
            },
        }


def test_the_other_errors_follow_the_request_language():
    french, english = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="en")
    assert french.get("/api/impact/").json() == {"error": "Authentification requise."}
    assert english.get("/api/impact/").json() == {"error": "Authentication required."}
    assert french.post("/api/auth/login/").json()["error"].startswith("Échec de la vérification CSRF")
    assert english.post("/api/auth/login/").json()["error"].startswith("CSRF check failed")
    assert french.post("/api/auth/login/").status_code == 403

    project = make_project()
    make_user("ana")
    for client, wrong, bad_amount, missing in (
        (Client(), "Nom d’utilisateur ou mot de passe incorrect.", "Le montant doit être compris entre 1,00 et 10000,00.", "Projet introuvable."),
        (Client(HTTP_ACCEPT_LANGUAGE="en"), "Invalid username or password.", "The amount must be between 1.00 and 10000.00.", "No such project."),
    ):
        assert _post(client, "/api/auth/login/", {"username": "ana", "password": "nope"}).json()["error"] == wrong
        client.force_login(make_user(f"u{len(wrong)}"))
        answer = _post(client, f"/api/projects/{project.pk}/contributions/", {"amount": "-5"}).json()
        assert answer["fields"]["amount"] == [bad_amount]
        assert _post(client, "/api/projects/999999/contributions/", {"amount": "5"}).json()["error"] == missing
