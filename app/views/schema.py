"""The API's OpenAPI description (app/openapi.yaml), served as written."""

from __future__ import annotations

from pathlib import Path

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"


@require_GET
def openapi_schema(request: HttpRequest) -> HttpResponse:
    return HttpResponse(OPENAPI_PATH.read_bytes(), content_type="application/yaml; charset=utf-8")
