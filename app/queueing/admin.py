"""The Django admin's queueing pages: the task browser (the ledger) and the link to django-rq.

The task browser, BackgroundJobAdmin, is the ledger (models.BackgroundJob) as a read-only admin:
search, filters built for a table of millions of rows (no DISTINCT over the table, no full count),
a job page with the job's whole story and its live state, three safe actions (task_browser.py), and
per-queue graphs (ledger_graphs.py). Operators only: access.may_operate_queues, as for django-rq's
pages; never Add, never edit, never delete (docs/operations.md "Task browser").
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.functional import cached_property
from django_rq.models import Dashboard

from . import catalog, ledger_graphs, task_browser
from .access import may_operate_queues
from .models import BackgroundJob

if TYPE_CHECKING:
    _Admin = admin.ModelAdmin[BackgroundJob]
else:
    _Admin = admin.ModelAdmin  # not subscriptable at run time


class OperatorsReadOnly:
    """Queue operators only (access.py), and read-only: no add, change or delete for anyone."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return may_operate_queues(request.user)

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return may_operate_queues(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


State = BackgroundJob.State
COUNT_CAP = 10_000  # the list counts at most this many matching rows (a count of 1,000,000 rows takes seconds)


class CappedPaginator(Paginator):  # type: ignore[type-arg]
    """Counts at most COUNT_CAP + 1 rows (`SELECT COUNT(*) FROM (... LIMIT n)`): pages beyond stay reachable by ?p=."""

    @cached_property
    def count(self) -> int:
        # Unordered: the count needs no sort, and can be read from an index alone.
        return self.object_list.order_by()[: COUNT_CAP + 1].count()  # type: ignore[attr-defined,no-any-return]


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("pending", "pending (all)"), ("retrying", "retrying (pending, an attempt ended)"),
            ("finished", "finished"), ("failed", "failed"), ("cancelled", "cancelled"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[BackgroundJob]) -> QuerySet[BackgroundJob]:
        value = self.value()
        if value == "retrying":
            return queryset.filter(state=State.PENDING, attempts__gt=0)
        if value in State.values:
            return queryset.filter(state=value)
        return queryset


class QueueFilter(admin.SimpleListFilter):
    """The declared queues: no `SELECT DISTINCT queue` over the whole table on every page."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in sorted(catalog.queues())]

    def queryset(self, request: HttpRequest, queryset: QuerySet[BackgroundJob]) -> QuerySet[BackgroundJob]:
        return queryset.filter(queue=self.value()) if self.value() else queryset


class FunctionFilter(admin.SimpleListFilter):
    """The declared jobs (a row's undeclared function is still found by ?func= or the search)."""

    title = "function"
    parameter_name = "func"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name.rsplit(".", 1)[-1]) for name in sorted(catalog.jobs())]

    def queryset(self, request: HttpRequest, queryset: QuerySet[BackgroundJob]) -> QuerySet[BackgroundJob]:
        return queryset.filter(func=self.value()) if self.value() else queryset


def _moment(value: str) -> Any:
    """A from/to bound: an ISO date or date-time (naive: the site's time zone)."""
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise IncorrectLookupParameters(f"{value!r} is not a date or a date-time (YYYY-MM-DD[THH:MM])")
        moment = datetime(day.year, day.month, day.day)
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


class CreatedRangeFilter(admin.FieldListFilter):
    """created_at: the last hour, day or week, or an explicit from/to (`created_at__gte`, `created_at__lt`)."""

    template = "admin/queueing/created_range_filter.html"
    RANGES = (("last hour", timedelta(hours=1)), ("last day", timedelta(days=1)), ("last week", timedelta(days=7)))

    def __init__(self, field: Any, request: HttpRequest, params: dict[str, Any], model: Any, model_admin: Any, field_path: str) -> None:
        self.lookup_gte, self.lookup_lt = f"{field_path}__gte", f"{field_path}__lt"
        super().__init__(field, request, params, model, model_admin, field_path)
        self.title = "created"

    def expected_parameters(self) -> list[str | None]:
        return [self.lookup_gte, self.lookup_lt]

    def bound(self, name: str) -> str:
        value = self.used_parameters.get(name)
        return str(value[-1] if isinstance(value, list) else value) if value else ""

    def has_output(self) -> bool:
        return True

    def queryset(self, request: HttpRequest, queryset: QuerySet[BackgroundJob]) -> QuerySet[BackgroundJob]:
        bounds = {}
        if self.bound(self.lookup_gte):
            bounds[self.lookup_gte] = _moment(self.bound(self.lookup_gte))
        if self.bound(self.lookup_lt):
            bounds[self.lookup_lt] = _moment(self.bound(self.lookup_lt))
        return queryset.filter(**bounds)

    def choices(self, changelist: Any) -> Any:
        self.form = self.form_context(changelist)  # the template gets the filter, not the list
        now = timezone.now().replace(microsecond=0)
        yield {
            "selected": not (self.bound(self.lookup_gte) or self.bound(self.lookup_lt)),
            "query_string": changelist.get_query_string(remove=[self.lookup_gte, self.lookup_lt]),
            "display": "any time",
        }
        for label, span in self.RANGES:
            yield {
                "selected": False,
                "query_string": changelist.get_query_string({self.lookup_gte: (now - span).isoformat()}, [self.lookup_lt]),
                "display": label,
            }

    def form_context(self, changelist: Any) -> dict[str, Any]:
        """The from/to form: its own two fields, the list's other parameters kept as hidden fields."""
        kept = [(k, v) for k, v in changelist.params.items() if k not in (self.lookup_gte, self.lookup_lt, "p")]
        hidden = [(k, item) for k, v in kept for item in (v if isinstance(v, list) else [v])]
        return {"gte": self.bound(self.lookup_gte), "lt": self.bound(self.lookup_lt), "hidden": hidden,
                "gte_name": self.lookup_gte, "lt_name": self.lookup_lt}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@admin.register(BackgroundJob)
class BackgroundJobAdmin(OperatorsReadOnly, _Admin):
    """The task browser. Speed on millions of rows: filters without DISTINCT, a capped count, indexes
    (migrations/0006_ledger_indexes.py), the owner in the same query (benchmarks/areas/ledger.py)."""

    list_display = ["id", "func", "queue", "shown_state", "attempts_of", "owner", "created_at", "waited", "ended"]
    list_filter = [QueueFilter, StateFilter, FunctionFilter, ("created_at", CreatedRangeFilter)]
    search_fields = ["id", "func", "owner__username", "owner__email", "args", "kwargs"]  # get_search_results
    search_help_text = (
        "An exact job id, or text in the function, the owner's username or e-mail, or the arguments "
        "(argument text scans the rows: narrow it with the filters)."
    )
    list_select_related = ["owner"]
    list_per_page = 50
    show_full_result_count = False
    paginator = CappedPaginator
    actions = None  # no bulk action: no delete; the safe actions are on each job's page
    readonly_fields = [f.name for f in BackgroundJob._meta.fields]
    fieldsets = [
        (None, {"fields": ["id", "func", "queue", "state", "owner", "args", "kwargs"]}),
        ("Times", {"fields": ["created_at", "due_at", "started_at", "next_retry_at", "ended_at"]}),
        ("Attempts and end", {"fields": ["attempts", "max_attempts", "last_error", "failure_reason", "outcome", "trace_parent"]}),
    ]
    change_form_template = "admin/queueing/backgroundjob/change_form.html"
    change_list_template = "admin/queueing/backgroundjob/change_list.html"

    # -- columns -------------------------------------------------------------------------------
    @admin.display(description="state", ordering="state")
    def shown_state(self, row: BackgroundJob) -> str:
        return task_browser.display_state(row.state, row.attempts)

    @admin.display(description="attempts")
    def attempts_of(self, row: BackgroundJob) -> str:
        return f"{row.attempts}/{row.max_attempts}" if row.max_attempts else str(row.attempts)

    @admin.display(description="waited")
    def waited(self, row: BackgroundJob) -> str:
        if row.started_at is None:
            return "-"
        return _duration((row.started_at - (row.due_at or row.created_at)).total_seconds())

    @admin.display(description="ended (duration)", ordering="ended_at")
    def ended(self, row: BackgroundJob) -> str:
        if row.ended_at is None:
            return "-"
        took = _duration((row.ended_at - row.started_at).total_seconds()) if row.started_at else "-"
        return f"{timezone.localtime(row.ended_at):%Y-%m-%d %H:%M:%S} ({took})"

    # -- search: an exact id uses the primary key; the rest are substring scans ------------------
    def get_search_results(self, request: HttpRequest, queryset: QuerySet[BackgroundJob], search_term: str) -> tuple[QuerySet[BackgroundJob], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        matches = (
            Q(id=term) | Q(func__icontains=term) | Q(owner__username__icontains=term) | Q(owner__email__icontains=term)
            | Q(args_text__icontains=term) | Q(kwargs_text__icontains=term)
        )
        annotated = queryset.annotate(args_text=Cast("args", TextField()), kwargs_text=Cast("kwargs", TextField()))
        return annotated.filter(matches), False

    # -- the job page ----------------------------------------------------------------------------
    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None) -> HttpResponse:
        row = BackgroundJob.objects.filter(pk=object_id).select_related("owner").first()
        context = dict(extra_context or {})
        if row is not None and self.has_view_permission(request, row):
            entries = row.history if isinstance(row.history, list) else []
            actions = row.actions if isinstance(row.actions, list) else []
            context.update(
                shown_state=task_browser.display_state(row.state, row.attempts),
                attempt_entries=[e for e in entries if isinstance(e, dict)],
                action_entries=[e for e in actions if isinstance(e, dict)],
                live_url=reverse("admin:queueing_backgroundjob_live", args=[row.pk]),
                live=row.state in (State.PENDING, State.FAILED),
                actions_allowed=_allowed_actions(row),
                graphs_url=reverse("admin:queueing_backgroundjob_graphs"),
            )
        return super().change_view(request, object_id, form_url, context)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = {"graphs_url": reverse("admin:queueing_backgroundjob_graphs"), **(extra_context or {})}
        return super().changelist_view(request, context)

    def get_urls(self) -> list[URLPattern]:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        own = [
            path("graphs/", self.admin_site.admin_view(self.graphs_view), name=f"{info}_graphs"),
            path("<path:object_id>/live/", self.admin_site.admin_view(self.live_view), name=f"{info}_live"),
            path("<path:object_id>/act/<str:action>/", self.admin_site.admin_view(self.act_view), name=f"{info}_act"),
        ]
        return own + super().get_urls()

    def _operator(self, request: HttpRequest) -> None:
        if not may_operate_queues(request.user):
            raise PermissionDenied

    def live_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        self._operator(request)
        row = get_object_or_404(BackgroundJob, pk=object_id)
        return JsonResponse(task_browser.live_state(row))

    def graphs_view(self, request: HttpRequest) -> HttpResponse:
        self._operator(request)
        context = {
            **self.admin_site.each_context(request),
            "title": "Task browser: per-queue graphs",
            "opts": self.opts,
            "windows": ledger_graphs.graphs(),
            "changelist_url": reverse("admin:queueing_backgroundjob_changelist"),
        }
        return TemplateResponse(request, "admin/queueing/backgroundjob/graphs.html", context)

    def act_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        """POST only (admin_view checks CSRF): one safe action, its result as a message, the job page again."""
        self._operator(request)
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if action not in task_browser.ACTIONS:
            raise Http404("No such action.")
        row = get_object_or_404(BackgroundJob, pk=object_id)
        done = task_browser.act(action, row.pk, request.user.get_username())
        if done.ok:
            self.log_change(request, row, f"{action}: {done.message}")
            messages.success(request, f"{action.capitalize()}: {done.message}.")
        else:
            messages.error(request, done.message)
        return HttpResponseRedirect(reverse("admin:queueing_backgroundjob_change", args=[row.pk]))


def _allowed_actions(row: BackgroundJob) -> list[str]:
    """Which buttons the page shows (each action still checks the state itself)."""
    if row.state == State.FAILED:
        return ["requeue"]
    if row.state == State.PENDING:
        return ["cancel", "stop"]
    return []


@admin.register(Dashboard)
class QueuesLinkAdmin(OperatorsReadOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    """The admin index's link to the queues: a redirect to django-rq's one guarded mount.

    django-rq's own registration (RQ_SHOW_ADMIN_LINK, off in settings) would mount every one of
    its views a second time under /admin/django_rq/, behind is_staff alone and with deletes that
    bypass the outbox. This keeps the link and mounts nothing but the redirect.
    """

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        return [path("", self.admin_site.admin_view(self.to_queues), name=name)]

    def to_queues(self, request: HttpRequest) -> HttpResponse:
        return HttpResponseRedirect(reverse("django_rq:home"))
