"""Contributions: record one, then (after commit) refresh the contributor's dashboard."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from app.models import Contribution, Project

from . import impact_refresh

MAX_AMOUNT = Decimal("1000000")


def contribute(*, user_id: int, project_id: int, amount: str) -> Contribution:
    try:
        value = Decimal(str(amount)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        raise ValidationError({"amount": [_("A decimal amount is required.")]}) from None
    if not Decimal("0.01") <= value <= MAX_AMOUNT:
        raise ValidationError({"amount": [_("The amount must be between 0.01 and %(max)s.") % {"max": MAX_AMOUNT}]})
    if not Project.objects.filter(pk=project_id).exists():
        raise Project.DoesNotExist(project_id)
    with transaction.atomic():
        contribution = Contribution.objects.create(user_id=user_id, project_id=project_id, amount=value)
        impact_refresh.request_refresh(user_id)
    return contribution
