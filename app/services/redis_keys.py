"""Every key the domain writes in Redis (the queueing layer's own are in app/queueing/keys.py).

Under `egoejo:`, the web role's key pattern (deploy/redis/roles.acl); the `limits` library's own
counters are LIMITS:*, and the Django cache prefixes its keys itself. No other module spells an
`egoejo:` key (tests/test_layout.py::test_egoejo_keys_are_spelt_only_in_the_keys_modules).
"""

from __future__ import annotations


def impact_pending(user_id: int) -> str:
    """The id of a member's newest waiting impact refresh: impact_refresh writes it, impact.start_refresh reads and releases it; TTL impact.PENDING_TTL_SECONDS."""
    return f"egoejo:impact:pending:{user_id}"


def throttle_slow(kind: str, *parts: str) -> str:
    """A login slow-down record (kind: pair, account, known) of normalised account and client: throttling.LoginAttempt writes and reads it; TTL the budget's window plus the longest delay, or throttling.KNOWN_CLIENT_SECONDS."""
    return ":".join(("egoejo:throttle:slow", kind, *parts))
