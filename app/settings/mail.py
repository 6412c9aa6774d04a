"""EMAIL_URL → Django e-mail settings (smtp://, smtp+tls://, smtps://, console://, file:///path, locmem://, none://)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured


def email_settings_from_url(url: str, default_file_dir: Path) -> dict[str, Any]:
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme == "console":
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    if scheme == "none":  # a process that sends no mail, and holds no SMTP password (compose's web, scheduler, dashboard)
        return {"EMAIL_BACKEND": "app.email_backends.NoMailBackend"}
    if scheme == "locmem":
        return {"EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}
    if scheme == "file":
        path = Path(unquote(parts.path)) if parts.path not in ("", "/") else default_file_dir
        return {"EMAIL_BACKEND": "app.email_backends.EmlFileBackend", "EMAIL_FILE_PATH": str(path)}
    if scheme in {"smtp", "smtp+tls", "smtps"}:
        query = parse_qs(parts.query)
        use_tls = scheme == "smtp+tls" or query.get("tls", ["0"])[0] in {"1", "true"}
        use_ssl = scheme == "smtps" or query.get("ssl", ["0"])[0] in {"1", "true"}
        if use_tls and use_ssl:
            raise ImproperlyConfigured("EMAIL_URL cannot ask for both STARTTLS and implicit TLS.")
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": parts.hostname or "localhost",
            "EMAIL_PORT": parts.port or (465 if use_ssl else 587 if use_tls else 25),
            "EMAIL_HOST_USER": unquote(parts.username or ""),
            "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
            "EMAIL_USE_TLS": use_tls,
            "EMAIL_USE_SSL": use_ssl,
            "EMAIL_TIMEOUT": int(query.get("timeout", ["10"])[0]),
        }
    raise ImproperlyConfigured(f"Unsupported EMAIL_URL scheme {scheme!r}.")
