"""Impact dashboards: correct numbers, set-based refresh, coalesced triggers."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import django_rq
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from app.jobs import metrics
from app.models import Contribution, ImpactDashboard
from app.services import impact, impact_refresh, redis_keys
from tests.factories import contribute, make_project, make_user

pytestmark = pytest.mark.django_db


def expected_totals(contributions: list[tuple[int, int, Decimal]]) -> dict[int, tuple[Decimal, int, int]]:
    """Independent computation in Python: user → (total, count, distinct projects)."""
    totals: dict[int, list] = defaultdict(lambda: [Decimal("0"), 0, set()])
    for user, project, amount in contributions:
        totals[user][0] += amount
        totals[user][1] += 1
        totals[user][2].add(project)
    return {user: (t[0], t[1], len(t[2])) for user, t in totals.items()}


amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9999.99"), places=2)


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 2), amounts), max_size=30))
def test_dashboards_equal_an_independent_computation(rows):
    Contribution.objects.all().delete()
    ImpactDashboard.objects.all().delete()
    users = [make_user(f"u{i}-{id(rows)}") for i in range(5)]
    projects = [make_project(f"p{i}-{id(rows)}") for i in range(3)]
    for user_index, project_index, amount in rows:
        contribute(users[user_index], projects[project_index], str(amount))
    expected = expected_totals([(users[u].pk, projects[p].pk, a) for u, p, a in rows])

    impact.refresh_all()
    for user in users:
        dashboard = ImpactDashboard.objects.get(user=user)
        total, count, distinct = expected.get(user.pk, (Decimal("0"), 0, 0))
        assert (dashboard.total_contributed, dashboard.contributions_count, dashboard.projects_supported) == (
            total, count, distinct
        )
        # The per-user job computes the same numbers.
        single = impact.recompute_for_user(user.pk)
        assert (single.total_contributed, single.contributions_count, single.projects_supported) == (total, count, distinct)
    for user in users:
        user.delete()
    for project in projects:
        project.delete()


def finished_runs() -> int:
    return django_rq.get_queue("metrics").finished_job_registry.count


def _users(count: int) -> None:
    from django.contrib.auth import get_user_model

    get_user_model().objects.bulk_create(
        [get_user_model()(username=f"bulk{i}", email=f"bulk{i}@example.org") for i in range(count)]
    )


def test_refresh_all_query_count_is_independent_of_the_number_of_users():
    _users(10)
    with CaptureQueriesContext(connection) as small:
        assert impact.refresh_all() == 10
    _users_more = 990
    from django.contrib.auth import get_user_model

    get_user_model().objects.bulk_create(
        [get_user_model()(username=f"more{i}", email=f"more{i}@example.org") for i in range(_users_more)]
    )
    with CaptureQueriesContext(connection) as large:
        assert impact.refresh_all() == 1000
    assert len(small) == len(large) == 2
    assert ImpactDashboard.objects.count() == 1000


def test_update_job_is_one_aggregate_and_one_upsert():
    user = make_user()
    contribute(user, make_project(), "12.50")
    with CaptureQueriesContext(connection) as queries:
        impact.recompute_for_user(user.pk)
    assert len(queries) == 2
    assert ImpactDashboard.objects.get(user=user).total_contributed == Decimal("12.50")


@pytest.mark.django_db(transaction=True)
def test_many_triggers_while_queued_lead_to_one_run(run_worker):
    user = make_user()
    ids = {impact_refresh.request_refresh(user.pk) for _ in range(100)}
    assert len(ids) == 1
    assert django_rq.get_queue("metrics").count == 1
    run_worker("metrics")
    assert finished_runs() == 1
    assert ImpactDashboard.objects.filter(user=user).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_trigger_during_a_run_leads_to_exactly_one_more(run_worker, monkeypatch):
    user = make_user()
    project = make_project()
    first = impact_refresh.request_refresh(user.pk)
    seen: list[str | None] = []
    original = impact.recompute_for_user

    def recompute_while_contributions_arrive(user_id: int):  # type: ignore[no-untyped-def]
        # Contributions land while the refresh runs: they must not be lost.
        if not seen:
            contribute(user, project, "5.00")
            seen.extend(impact_refresh.request_refresh(user_id) for _ in range(10))
        return original(user_id)

    monkeypatch.setattr(impact, "recompute_for_user", recompute_while_contributions_arrive)
    run_worker("metrics")
    assert len(set(seen)) == 1 and seen[0] != first
    assert finished_runs() == 2  # the first run, and exactly one more
    assert ImpactDashboard.objects.get(user=user).total_contributed == Decimal("5.00")


@pytest.mark.django_db(transaction=True)
def test_contribution_endpoint_refreshes_the_dashboard_after_commit(client, run_worker):
    user = make_user()
    project = make_project()
    client.force_login(user)
    for amount in ("10.00", "2.50", "7.25"):
        response = client.post(
            f"/api/projects/{project.pk}/contributions/", data=json.dumps({"amount": amount}), content_type="application/json"
        )
        assert response.status_code == 201
    # One refresh recorded with each contribution; the two earlier ones skip for the last.
    metrics_queue = django_rq.get_queue("metrics")
    queued = metrics_queue.get_job_ids()
    assert len(queued) == 3
    run_worker("metrics")
    results = [metrics_queue.fetch_job(job_id).return_value() for job_id in queued]
    assert [r["updated"] for r in results] == [False, False, True], results
    assert results[0]["joined"] == results[1]["joined"] == queued[2]
    body = client.get("/api/impact/").json()
    assert body["dashboard"]["total_contributed"] == "19.75"
    assert body["dashboard"]["contributions_count"] == 3
    assert body["platform"]["contributors"] == 1
    assert body["stale"] is False
    bad = client.post(f"/api/projects/{project.pk}/contributions/", data='{"amount": "-3"}', content_type="application/json")
    assert bad.status_code == 400


def test_update_job_skips_a_missing_user(run_worker):
    assert metrics.update_impact_dashboard_metrics(123456) == {"user_id": 123456, "updated": False}


def _fail_outbox_inserts(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
    """A database error on the outbox's INSERT only (Django's execute wrapper: a real error path)."""
    from django.db import OperationalError

    if sql.lstrip().upper().startswith("INSERT") and "backgroundjob" in sql.lower():
        raise OperationalError("injected: the outbox INSERT failed")
    return execute(sql, params, many, context)


@pytest.mark.django_db(transaction=True)
def test_a_failed_outbox_insert_leaves_no_marker_that_holds_refreshes_back(run_worker):
    from django.db import OperationalError

    from app.queueing.models import BackgroundJob

    user = make_user()
    with connection.execute_wrapper(_fail_outbox_inserts), pytest.raises(OperationalError):
        impact_refresh.request_refresh(user.pk)
    job_id = impact_refresh.request_refresh(user.pk)  # the next trigger: a real refresh, not a phantom's id
    assert BackgroundJob.objects.filter(pk=job_id, state=BackgroundJob.State.PENDING).exists()
    run_worker("metrics")
    assert finished_runs() == 1
    assert ImpactDashboard.objects.filter(user=user).exists()


@pytest.mark.django_db(transaction=True)
def test_a_marker_naming_no_recorded_job_is_taken_over(run_worker, redis_conn):
    """A process killed between setting the marker and its INSERT: the marker names nothing."""
    from app.queueing.models import BackgroundJob

    user = make_user()
    redis_conn.set(redis_keys.impact_pending(user.pk), "no-such-job", ex=impact.PENDING_TTL_SECONDS)
    job_id = impact_refresh.request_refresh(user.pk)
    assert job_id != "no-such-job"
    assert BackgroundJob.objects.filter(pk=job_id).exists()
    assert impact_refresh.request_refresh(user.pk) == job_id  # and coalescing still works
    run_worker("metrics")
    assert ImpactDashboard.objects.filter(user=user).exists()


class _Killed(BaseException):
    """The process dies: what runs after it never does."""


def _die() -> None:
    raise _Killed


@pytest.mark.django_db(transaction=True)
def test_a_process_killed_right_after_a_contribution_commits_loses_no_refresh(run_worker, redis_conn):
    """Asked for in an on-commit hook, the refresh would be lost with a web worker killed between
    the commit and the hook (a dashboard that never appears). It is recorded with the
    contribution, in its transaction."""
    from django.db import transaction

    from app.queueing import outbox
    from app.services.contributions import contribute as contribute_service

    user, project = make_user(), make_project()
    with pytest.raises(_Killed), transaction.atomic():
        transaction.on_commit(_die)  # the first hook: the process dies right after the commit
        contribute_service(user_id=user.pk, project_id=project.pk, amount="12.00")
    assert Contribution.objects.filter(user=user).count() == 1
    assert django_rq.get_queue("metrics").count == 0  # nothing pushed, no marker claimed
    outbox.reconcile(redis_conn, min_age=timedelta(0), missing_after=0)  # the scheduler's pass sends the recorded refresh
    run_worker("metrics")
    assert ImpactDashboard.objects.get(user=user).total_contributed == Decimal("12.00")


@pytest.mark.django_db(transaction=True)
def test_a_refresh_skips_only_for_one_that_waits_behind_it(run_worker, redis_conn):
    """An earlier refresh skips when the marker names a later one still waiting (it starts later
    and sees every commit the earlier one would); never for one that has ended."""
    from app.queueing.models import BackgroundJob

    user, project = make_user(), make_project()
    contribute(user, project, "3.00")
    first = impact_refresh.request_refresh(user.pk)
    redis_conn.set(redis_keys.impact_pending(user.pk), "someone-else", ex=60)  # names no recorded job
    run_worker("metrics")
    assert django_rq.get_queue("metrics").fetch_job(first).return_value()["updated"] is True
    second = impact_refresh.request_refresh(user.pk)  # takes the stale marker over
    BackgroundJob.objects.filter(pk=second).update(state=BackgroundJob.State.FINISHED)  # ended meanwhile
    assert impact.start_refresh(user.pk, "a-third-run") is None  # an ended run is waited for by no one


def test_a_refresh_that_cannot_reach_redis_at_its_start_fails_transiently(monkeypatch):
    """Going on would leave the marker naming this run, and a later request could skip for a
    run whose query predates it: the run fails with a transient error and is retried."""
    import redis

    from app.queueing.workers import is_transient
    from tests.smtp import free_port

    unreachable = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1, retry_on_error=[])
    monkeypatch.setattr(impact, "redis_connection", lambda: unreachable)
    with pytest.raises(redis.exceptions.ConnectionError) as error:
        impact.start_refresh(1, "a-run")
    assert is_transient(error.value)
