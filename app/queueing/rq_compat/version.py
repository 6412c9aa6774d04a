"""The version gates: RQ's (fast paths on or off) and one per other library whose privates the gate touches.

RQ: checked once, when this module is imported. On an rq other than VERIFIED_RQ_VERSION, or with
QUEUEING_FAST_PATHS off (RQ_FAST_PATHS=0), `fast_paths()` answers False, every fast path takes
RQ's own code path instead, and the reason is logged once.

The other libraries (rq-scheduler, redis-py, rq-dashboard) have no second code path: their
private names are the only way to what the project needs. Each gate module names the version
it was verified against; on any other installed version, the first use of one of its functions
logs, once, which privates are unverified. tests/test_rq_compat.py fails until the contract
tests pass on the new version and the constant is moved.
"""

from __future__ import annotations

import importlib.metadata
import logging

import rq

logger = logging.getLogger(__package__)  # the gate's one logger: app.queueing.rq_compat

VERIFIED_RQ_VERSION = "3.0.0"

_why_off: str | None = None
_why_logged = False


def fast_paths() -> bool:
    """True when the fast paths may run: the setting is on and rq is the verified version."""
    global _why_logged
    from django.conf import settings

    reason = _why_off
    if reason is None and not getattr(settings, "QUEUEING_FAST_PATHS", True):
        reason = "QUEUEING_FAST_PATHS is off (RQ_FAST_PATHS=0)"
    if reason is None:
        return True
    if not _why_logged:
        logger.warning("using RQ's own code paths: %s", reason)
        _why_logged = True
    return False


if rq.__version__ != VERIFIED_RQ_VERSION:
    _why_off = f"rq {rq.__version__} is not the {VERIFIED_RQ_VERSION} the fast paths were verified against"


class LibraryGate:
    """The version check of one library whose private names a gate module touches."""

    def __init__(self, distribution: str, verified: str, privates: str) -> None:
        self.distribution = distribution  # the name pip knows it by
        self.verified = verified
        self.privates = privates  # what the gate module touches, for the warning
        self._installed: str | None = None
        self._warned = False

    def installed(self) -> str:
        if self._installed is None:
            self._installed = importlib.metadata.version(self.distribution)
        return self._installed

    def why_unverified(self) -> str | None:
        installed = self.installed()
        if installed == self.verified:
            return None
        return f"{self.distribution} {installed} is not the {self.verified} its private names ({self.privates}) were verified against"

    def check(self) -> bool:
        """Whether the installed version is the verified one; on another, says so once (a warning)."""
        reason = self.why_unverified()
        if reason is None:
            return True
        if not self._warned:
            logger.warning("unverified private names: %s", reason)
            self._warned = True
        return False
