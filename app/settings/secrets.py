"""Production refuses secrets that are placeholders or too short to resist guessing."""

from __future__ import annotations

import re

from django.core.exceptions import ImproperlyConfigured

# What example files and docs put in a secret's place.
_PLACEHOLDER = re.compile(r"change[-_ ]?me|replace[-_ ]?me|placeholder|your[-_ ]|^<.*>$|^x+$|^\*+$", re.IGNORECASE)


def refuse_weak_secret(name: str, value: str | None, min_length: int, *, required: bool = False) -> None:
    """ImproperlyConfigured if `value` looks like a placeholder or is shorter than `min_length`.

    An unset optional secret passes (the feature it guards stays closed); `required` refuses it.
    """
    if not value:
        if required:
            raise ImproperlyConfigured(f"Set {name}.")
        return
    if _PLACEHOLDER.search(value.strip()):
        raise ImproperlyConfigured(f"{name} is a placeholder: generate one (python -c 'import secrets; print(secrets.token_urlsafe(48))').")
    if len(value) < min_length:
        raise ImproperlyConfigured(f"{name} is too short: at least {min_length} characters in production.")
