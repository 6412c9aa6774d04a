"""Throttling of the entry points an attacker can hammer: login, registration, password resets, uploads.

Budgets are moving windows counted by the `limits` library in Redis — the cache DB
(settings.THROTTLE_REDIS_URL, by default REDIS_URL's cache DB), never the queues' DB — so every
web process shares one count. Each budget is keyed by what the attacker cannot multiply cheaply:
the client's address and the account (or address) under attack. A refused request is answered
429 with a JSON body and a Retry-After header (`throttled_response`).

Failed logins are not a hard lock of the account (anyone could lock its owner out by guessing
wrong): they slow the guesser down (`LoginAttempt`). Failures are counted per (account, client)
pair and per account; past the free ones, the next attempt waits a delay that doubles with each
failure (1 s, 2 s, 4 s ... up to THROTTLE_LOGIN_MAX_DELAY). The pair's delay stops only the
client that failed; the account's stops only clients that never logged in to it, so a stranger
hammering an account, from one address or many, does not stop its owner's own client
(tests/security/test_account_proof.py). A client failing across accounts is refused for the window.

If the counting Redis is unreachable the request goes through (logged): throttling slows
attackers down, it must not take logins down with the cache.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
import uuid
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

from app.services import redis_keys

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
    address = request.META.get("REMOTE_ADDR", "") or "unknown"
    if hops > 0:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            address = forwarded[-hops]
    return _network(address)


def _network(address: str) -> str:
    """An IPv6 client is its /64 (one subscriber gets a whole /64: counting its addresses apart
    would give each attacker 2**64 budgets); IPv4 and anything unparsable as they are."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


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


# --- login: slow-down, never a lock-out ------------------------------------------------------

KNOWN_CLIENT_SECONDS = 90 * 86_400  # a client that logged in to an account is its owner's for this long


def _redis():  # type: ignore[no-untyped-def]
    """The counting Redis's client (the `limits` storage's own connection pool)."""
    return limiter().storage.get_connection()


def _slow_key(kind: str, *parts: str) -> str:
    return redis_keys.throttle_slow(kind, *(_key(part) for part in parts))


def _wait(failures: int, last: float, rate: RateLimitItem, now: float) -> int:
    """Seconds before the next attempt: none for the first `rate.amount` failures of the window,
    then 1 s after the last failure, doubling with each failure, at most THROTTLE_LOGIN_MAX_DELAY."""
    if failures < rate.amount:
        return 0
    delay = min(float(settings.THROTTLE_LOGIN_MAX_DELAY), 2.0 ** min(failures - rate.amount, 30))
    return max(0, math.ceil(last + delay - now))


class LoginAttempt:
    """One login attempt's budgets: check() before the password is checked, then failed() or succeeded()."""

    def __init__(self, request: HttpRequest | None, username: str) -> None:
        self.account = username or ""
        self.client = client_ip(request) if request is not None else "unknown"
        self.per_client = budget("THROTTLE_LOGIN_FAILURES_PER_IP")
        self.per_pair = _parse(settings.THROTTLE_LOGIN_FAILURES_PER_CLIENT_ACCOUNT)
        self.per_account = _parse(settings.THROTTLE_LOGIN_FAILURES_PER_ACCOUNT)
        self.pair_key = _slow_key("pair", self.account, self.client)
        self.account_key = _slow_key("account", self.account)
        self.known_key = _slow_key("known", self.account, self.client)

    def check(self) -> None:
        """Raise Throttled if this client must wait; counts nothing."""
        check((self.per_client, self.client))
        now = time.time()
        try:
            pipe = _redis().pipeline(transaction=False)
            for key, rate in ((self.pair_key, self.per_pair), (self.account_key, self.per_account)):
                pipe.zremrangebyscore(key, 0, now - rate.get_expiry())
                pipe.zcard(key)
                pipe.zrange(key, -1, -1, withscores=True)
            pipe.exists(self.known_key)
            _, pair_count, pair_last, _, account_count, account_last, known = pipe.execute()
        except Exception:  # noqa: BLE001 - any storage failure: let the request through
            logger.warning("throttle storage unreachable: login not checked", exc_info=True)
            return
        waits = {"THROTTLE_LOGIN_FAILURES_PER_CLIENT_ACCOUNT": _wait(pair_count, _last(pair_last), self.per_pair, now)}
        if not known:  # the account's own clients are never slowed down by strangers' failures
            waits["THROTTLE_LOGIN_FAILURES_PER_ACCOUNT"] = _wait(account_count, _last(account_last), self.per_account, now)
        name, seconds = max(waits.items(), key=lambda item: item[1])
        if seconds > 0:
            logger.warning("throttled: %s: retry after %d s", name, seconds)
            raise Throttled(name, seconds)

    def failed(self) -> None:
        try:
            hit((self.per_client, self.client))
        except Throttled:
            pass  # this failure is answered anyway; the next attempt is checked
        now = time.time()
        member = f"{now:.6f}:{uuid.uuid4().hex[:8]}"
        try:
            pipe = _redis().pipeline(transaction=False)
            for key, rate in ((self.pair_key, self.per_pair), (self.account_key, self.per_account)):
                pipe.zadd(key, {member: now})
                pipe.expire(key, rate.get_expiry() + settings.THROTTLE_LOGIN_MAX_DELAY)
            pipe.execute()
        except Exception:  # noqa: BLE001
            logger.warning("throttle storage unreachable: failure not counted", exc_info=True)

    def succeeded(self) -> None:
        """The pair starts afresh and the client becomes one of the account's own; the account's
        count stays (an owner's success must not hand a guesser a fresh budget)."""
        try:
            pipe = _redis().pipeline(transaction=False)
            pipe.delete(self.pair_key)
            pipe.set(self.known_key, "1", ex=KNOWN_CLIENT_SECONDS)
            pipe.execute()
        except Exception:  # noqa: BLE001
            logger.warning("throttle storage unreachable: success not recorded", exc_info=True)

    def forgive(self) -> None:
        """After the owner proved their address (a password reset): the account and this pair start afresh."""
        try:
            _redis().delete(self.pair_key, self.account_key)
        except Exception:  # noqa: BLE001
            logger.warning("throttle storage unreachable: counts not cleared", exc_info=True)


def _last(entries: list[tuple[bytes, float]]) -> float:
    return float(entries[0][1]) if entries else 0.0


class ThrottledModelBackend(ModelBackend):
    """Django's ModelBackend under every login form — the API's and the admin's — with failed
    passwords slowing the guesser down (LoginAttempt). A refused attempt checks no password; the
    verdict is left on the request (`login_throttled`) for the API to answer 429 with Retry-After.

    An inactive account (unconfirmed, or deactivated) fails exactly like a wrong password: the
    hasher runs either way (ModelBackend hashes for an unknown username too), so neither the
    answer nor its time tells whether the name exists or is confirmed."""

    def authenticate(self, request, username=None, password=None, **kwargs):  # type: ignore[no-untyped-def]
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        attempt = LoginAttempt(request, str(username or ""))
        try:
            attempt.check()
        except Throttled as exc:
            if request is not None:
                request.login_throttled = exc  # type: ignore[attr-defined]
            raise PermissionDenied from None  # authenticate() stops here and returns None
        if "\x00" in str(username or ""):
            username = ""  # no account's name: PostgreSQL refuses a NUL in text; the hasher still runs
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            attempt.failed()
        else:
            attempt.succeeded()
        return user
