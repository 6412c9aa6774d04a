"""Content-Security-Policy (and Permissions-Policy) on every Django response.

Django 5.2 has no CSP of its own; SecurityMiddleware sends HSTS, nosniff, Referrer-Policy and
Cross-Origin-Opener-Policy, XFrameOptionsMiddleware X-Frame-Options. The policy allows the site's
own scripts only: the admin's and django-rq's pages load theirs from files (the project's
django-rq templates replaced the inline ones), so an injected `<script>` or `onerror=` never runs.
Styles may be inline (the admin's `style=` attributes). tests/security/test_deploy.py checks the
headers; tests/browser renders the admin and django-rq pages under this policy with no violation.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        if settings.PERMISSIONS_POLICY and "Permissions-Policy" not in response:
            response["Permissions-Policy"] = settings.PERMISSIONS_POLICY
        return response
