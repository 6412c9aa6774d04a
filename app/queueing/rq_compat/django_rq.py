"""django-rq: no private name, but the admin pages' wrapping rests on django-rq 4.2's own views.

django_rq_pages.py serves django-rq's URL patterns with three of its views wrapped (a job's
delete, the bulk "delete" action, "clear failed jobs"), by their names in `django_rq.views` and
the URL names in `django_rq.urls`. Those are public names, but what they do (fetching jobs with
rq's own Job class) is what the wrapping answers, so the version is pinned like the others':
tests/test_django_rq_pages.py checks each wrapped view on django-rq's own code path, and
tests/test_rq_compat.py that the installed version is the verified one.
"""

from __future__ import annotations

from .version import LibraryGate

VERIFIED_DJANGO_RQ_VERSION = "4.2.0"
GATE = LibraryGate("django-rq", VERIFIED_DJANGO_RQ_VERSION, "the delete views and URL names its admin pages wrap")
