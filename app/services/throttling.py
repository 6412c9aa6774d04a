"""Throttling of the entry points an attacker can hammer: login, registration, uploads.

Budgets are moving windows counted by the `limits` library in Redis — the cache DB
(settings.THROTTLE_REDIS_URL, by default REDIS_URL's cache DB), never the queues' DB — so every
web process shares one count. Each budget is keyed by what the attacker cannot multiply cheaply:
the client's address and the account (or address) under attack. A refused request is answered
429 with a JSON body and a Retry-After header (`throttled_response`).

If the counting Redis is unreachable the request goes through (logged): throttling slows
attackers down, it must not take logins down with the cache.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

logger = logging.getLogger(__name__)

_NAMESPACE = "egoejo-throttle"


class Throttled(Exception):
    """A budget is spent; `retry_after` seconds until one more attempt is allowed."""

    def __init__(self, budget: str, retry_after: int) -> None:
        super().__init__(f"{budget}: retry after {retry_after} s")
        self.budget = budget
        self.retry_after = retry_after


@dataclass(frozen=True)
class Budget:
    name: str  # also the setting that holds its rate, e.g. THROTTLE_LOGIN_FAILURES_PER_ACCOUNT
    rate: RateLimitItem


def budget(name: str) -> Budget:
    return Budget(name, _parse(getattr(settings, name)))


@lru_cache(maxsize=32)
def _parse(rate: str) -> RateLimitItem:
    return parse(rate)


@lru_cache(maxsize=4)
def _limiter(url: str) -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(storage_from_string(url, socket_connect_timeout=1, socket_timeout=1))


def limiter() -> MovingWindowRateLimiter:
    return _limiter(settings.THROTTLE_REDIS_URL)


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or the entry THROTTLE_TRUSTED_PROXIES hops from the right
    of X-Forwarded-For when that many proxies of ours stand in front (entries further left are the
    client's to forge)."""
    hops = settings.THROTTLE_TRUSTED_PROXIES
    if hops > 0:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _key(value: str) -> str:
    return value.strip().casefold()[:320]


def check(*charges: tuple[Budget, str]) -> None:
    """Raise Throttled if any (budget, key) has no attempt left; counts nothing."""
    for spent in _spent(charges):
        raise spent


def hit(*charges: tuple[Budget, str]) -> None:
    """Count one attempt against each (budget, key); raise Throttled if one was already spent."""
    try:
        refused = [
            (item, key) for item, key in charges if not limiter().hit(item.rate, _NAMESPACE, item.name, _key(key))
        ]
    except Exception:  # noqa: BLE001 - any storage failure: let the request through
        logger.warning("throttle storage unreachable: request not counted", exc_info=True)
        return
    for spent in _spent(refused):
        raise spent


def forget(item: Budget, key: str) -> None:
    try:
        limiter().clear(item.rate, _NAMESPACE, item.name, _key(key))
    except Exception:  # noqa: BLE001
        logger.warning("throttle storage unreachable: count not cleared", exc_info=True)


def _spent(charges: tuple[tuple[Budget, str], ...] | list[tuple[Budget, str]]) -> list[Throttled]:
    spent: list[Throttled] = []
    try:
        for item, key in charges:
            if limiter().test(item.rate, _NAMESPACE, item.name, _key(key)):
                continue
            stats = limiter().get_window_stats(item.rate, _NAMESPACE, item.name, _key(key))
            spent.append(Throttled(item.name, max(1, math.ceil(stats.reset_time - time.time()))))
    except Exception:  # noqa: BLE001
        logger.warning("throttle storage unreachable: request not checked", exc_info=True)
        return []
    if spent:
        logger.warning("throttled: %s", ", ".join(str(exc) for exc in spent))
    return sorted(spent, key=lambda exc: -exc.retry_after)[:1]


def throttled_response(exc: Throttled) -> JsonResponse:
    response = JsonResponse(
        {"error": _("Too many attempts. Try again in %(seconds)d s.") % {"seconds": exc.retry_after}, "retry_after": exc.retry_after},
        status=429,
    )
    response["Retry-After"] = str(exc.retry_after)
    return response


def login_charges(request: HttpRequest | None, username: str) -> tuple[tuple[Budget, str], ...]:
    """The budgets a failed password spends: the account's, and the client's when there is a request."""
    per_account = (budget("THROTTLE_LOGIN_FAILURES_PER_ACCOUNT"), username or "")
    if request is None:
        return (per_account,)
    return per_account, (budget("THROTTLE_LOGIN_FAILURES_PER_IP"), client_ip(request))


class ThrottledModelBackend(ModelBackend):
    """Django's ModelBackend, counting failed passwords per account and per client: once either
    budget is spent every attempt is refused, the right password included. It sits under every
    login form — the API's (which answers 429 itself) and the admin's."""

    def authenticate(self, request, username=None, password=None, **kwargs):  # type: ignore[no-untyped-def]
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        charges = login_charges(request, str(username or ""))
        try:
            check(*charges)
        except Throttled:
            raise PermissionDenied from None  # authenticate() stops here and returns None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            try:
                hit(*charges)
            except Throttled:
                pass  # this failure is refused anyway; the next attempt is checked above
        else:
            forget(*charges[0])
        return user
