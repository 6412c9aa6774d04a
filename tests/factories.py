"""Builders for test data and test images."""

from __future__ import annotations

import io
from decimal import Decimal

from django.contrib.auth import get_user_model
from PIL import Image

from app.models import Contribution, Project


def make_user(username: str = "alice", email: str | None = None, **extra: object):  # type: ignore[no-untyped-def]
    return get_user_model().objects.create_user(
        username=username, email=email or f"{username}@example.org", password="correct horse battery", **extra
    )


def make_project(slug: str = "jardin") -> Project:
    return Project.objects.create(title=slug.title(), slug=slug)


def contribute(user, project: Project, amount: str) -> Contribution:  # type: ignore[no-untyped-def]
    return Contribution.objects.create(user=user, project=project, amount=Decimal(amount))


def jpeg_bytes(size: tuple[int, int] = (4000, 3000), orientation: int | None = None, color=(200, 30, 30)) -> bytes:  # type: ignore[no-untyped-def]
    image = Image.new("RGB", size, color)
    # A marker in the top-left quarter lets tests check the orientation after processing.
    image.paste((0, 0, 255), (0, 0, size[0] // 4, size[1] // 4))
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def png_rgba_bytes(size: tuple[int, int] = (800, 600)) -> bytes:
    image = Image.new("RGBA", size, (0, 128, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def confirmation_token(username: str) -> str:
    """The token the confirmation mail carries, made as the mail job makes it (tests that are not
    about mail skip the SMTP round trip; tests/security/test_account_proof.py follows the real mail)."""
    from app.services import account_tokens

    user = get_user_model().objects.get(username=username)
    return account_tokens.make(account_tokens.confirmation_tokens, user)


def reset_token(username: str) -> str:
    """The token a password-reset mail carries, made as the mail job makes it."""
    from app.services import account_tokens

    user = get_user_model().objects.get(username=username)
    return account_tokens.make(account_tokens.reset_tokens, user)
