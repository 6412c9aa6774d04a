"""Two per-job hot spots of RQ 3.0, answered by equivalent faster code.

Profiled on the in-process worker (py-spy, a trivial job, docs/throughput.md):
- `resolve_serializer()` checks `isinstance(serializer, Serializer)` against a runtime-checkable
  Protocol, which Python 3.11 answers by walking the protocol's attributes every time; RQ calls
  it six times per job (each Job, Result and registry object): ~6 % of the worker's CPU. For a
  given serializer the answer never changes, so it is remembered.
- `utcparse()` reads RQ's own timestamps with `strptime` (~3 %); `datetime.fromisoformat` reads
  that exact format far faster. Anything not in that exact format goes to RQ's own code.

Installed only on the RQ version it was checked against (requirements.txt pins it);
tests/test_lean_bookkeeping.py fails if it is not installed, so an upgrade gets a look.
"""

from __future__ import annotations

import datetime
import importlib
import logging
from typing import Any

import rq
import rq.serializers
import rq.utils

logger = logging.getLogger("app.jobs")

CHECKED_RQ_VERSION = "3.0.0"
_MODULES_RESOLVING_SERIALIZERS = ("rq.job", "rq.results", "rq.worker.base", "rq.queue", "rq.registry", "rq.scheduler", "rq.cron")

_original_resolve = rq.serializers.resolve_serializer
_original_utcparse = rq.utils.utcparse
_resolved: dict[Any, Any] = {}


def resolve_serializer(serializer: Any = None) -> Any:
    try:
        return _resolved[serializer]
    except KeyError:
        resolved = _original_resolve(serializer)  # raises for a bad serializer: not remembered
        _resolved[serializer] = resolved
        return resolved
    except TypeError:  # unhashable: nothing to remember it by
        return _original_resolve(serializer)


def utcparse(string: str) -> datetime.datetime:
    # rq.utils.utcformat writes '%Y-%m-%dT%H:%M:%S.%fZ': 27 characters, 'T' and 'Z' in place.
    if len(string) == 27 and string[10] == "T" and string[-1] == "Z":
        return datetime.datetime.fromisoformat(string[:-1]).replace(tzinfo=datetime.timezone.utc)
    return _original_utcparse(string)


def install() -> bool:
    if rq.__version__ != CHECKED_RQ_VERSION:
        logger.warning("rq %s is not the %s these speed-ups were checked against: not installed", rq.__version__, CHECKED_RQ_VERSION)
        return False
    rq.serializers.resolve_serializer = resolve_serializer
    for name in _MODULES_RESOLVING_SERIALIZERS:
        module = importlib.import_module(name)
        if getattr(module, "resolve_serializer", None) is _original_resolve:
            module.resolve_serializer = resolve_serializer  # type: ignore[attr-defined]
    rq.utils.utcparse = utcparse
    scheduler = importlib.import_module("rq.scheduler")
    if getattr(scheduler, "utcparse", None) is _original_utcparse:
        scheduler.utcparse = utcparse  # type: ignore[attr-defined]
    return True


INSTALLED = install()
