"""Contributions: record one, then (after commit) refresh the contributor's dashboard.

What is accepted (tests/security/test_contributions.py attacks each rule):
- an amount given as a decimal string or a JSON number, rounded to cents, within
  CONTRIBUTION_MIN_AMOUNT..CONTRIBUTION_MAX_AMOUNT (settings); nothing else (NaN, Infinity,
  booleans, lists, 10^400, a 100,000-digit string) gets past `parse_amount`;
- to an open project only: a draft is unknown (Project.DoesNotExist, a 404), a closed or
  archived one refuses (ProjectNotOpen, a 409); the project row is locked while the contribution
  is written, so a project closed meanwhile takes none;
- at most once per Idempotency-Key and member: the same key again returns the first
  contribution (`replayed`), the same key for another project or amount is refused
  (IdempotencyKeyReused, a 422).
The per-member rate (THROTTLE_CONTRIBUTIONS_PER_USER) is counted by the view, the entry point,
like every other budget of app/services/throttling.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from app.models import Contribution, Project
from app.services import impact_refresh

CENT = Decimal("0.01")
# The longest amount text worth reading: "10000000000.00" is 14 characters.
_MAX_AMOUNT_TEXT = 32
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class ProjectNotOpen(Exception):
    """The project exists but takes no contribution (closed, archived)."""


class IdempotencyKeyReused(Exception):
    """The member's key already recorded a different contribution."""


@dataclass(frozen=True)
class Recorded:
    contribution: Contribution
    replayed: bool  # True: the key's first contribution, recorded by an earlier request


def parse_amount(raw: object) -> Decimal:
    """The amount in cents' precision, within the configured bounds; ValidationError otherwise."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float, Decimal)):
        raise ValidationError({"amount": [_("A decimal amount is required.")]})
    text = str(raw).strip()
    try:
        value = Decimal(text) if 0 < len(text) <= _MAX_AMOUNT_TEXT else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise ValidationError({"amount": [_("A decimal amount is required.")]})
    low, high = settings.CONTRIBUTION_MIN_AMOUNT, settings.CONTRIBUTION_MAX_AMOUNT
    # Compared before rounding, which would overflow on 1e400; within the bounds it cannot.
    if not low <= value <= high:
        raise ValidationError(
            {"amount": [_("The amount must be between %(min)s and %(max)s.") % {"min": _money(low), "max": _money(high)}]}
        )
    return value.quantize(CENT)


def _money(value: Decimal) -> str:
    return number_format(value, decimal_pos=2, use_l10n=True)


def valid_idempotency_key(key: str) -> bool:
    return IDEMPOTENCY_KEY.fullmatch(key) is not None


def contribute(*, user_id: int, project_id: int, amount: object) -> Contribution:
    return record(user_id=user_id, project_id=project_id, amount=amount).contribution


def record(*, user_id: int, project_id: int, amount: object, idempotency_key: str | None = None) -> Recorded:
    value = parse_amount(amount)
    if idempotency_key is not None:
        if not valid_idempotency_key(idempotency_key):
            raise ValidationError({"idempotency_key": [_("An Idempotency-Key is 1 to 64 letters, digits or . _ : -")]})
        earlier = _earlier(user_id, idempotency_key, project_id, value)
        if earlier is not None:
            return earlier
    try:
        with transaction.atomic():
            project = Project.objects.select_for_update().filter(pk=project_id).exclude(status=Project.Status.DRAFT).first()
            if project is None:
                raise Project.DoesNotExist(project_id)
            if project.status != Project.Status.OPEN:
                raise ProjectNotOpen(project_id)
            contribution = Contribution.objects.create(
                user_id=user_id, project_id=project_id, amount=value, idempotency_key=idempotency_key
            )
            impact_refresh.request_refresh(user_id)
    except IntegrityError:
        # The same key, recorded by a concurrent request after our look-up.
        earlier = _earlier(user_id, idempotency_key, project_id, value) if idempotency_key else None
        if earlier is None:
            raise
        return earlier
    return Recorded(contribution, replayed=False)


def _earlier(user_id: int, key: str | None, project_id: int, value: Decimal) -> Recorded | None:
    earlier = Contribution.objects.filter(user_id=user_id, idempotency_key=key).first()
    if earlier is None:
        return None
    if earlier.project_id != project_id or earlier.amount != value:
        raise IdempotencyKeyReused(key)
    return Recorded(earlier, replayed=True)
