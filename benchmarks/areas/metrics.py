"""Impact dashboards on PostgreSQL: set-based refresh-all against the naive per-user loop.

    scripts/bench metrics [--quick]      (BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/postgres)

Creates its own database (egoejo_bench_metrics), generates members and contributions,
and drops the database at the end.
"""

from __future__ import annotations

import time
from decimal import Decimal

from benchmarks.lib.common import median, parse_args, print_table, private_pg_database, private_redis_db, ratio, run_size, setup_django

BENCH_DB = "egoejo_bench_metrics"


def generate(users: int, contributions: int, projects: int = 200) -> None:
    """Rows made by the database itself (generate_series), so generation isn't what we time."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)"
            " SELECT '!', false, 'member' || g, '', '', 'member' || g || '@example.org', false, true, now()"
            " FROM generate_series(1, %s) g",
            [users],
        )
        cursor.execute(
            "INSERT INTO egoejo_project (title, slug, description, created_at, status)"
            " SELECT 'Project ' || g, 'project-' || g, '', now(), 'open' FROM generate_series(1, %s) g",
            [projects],
        )
        cursor.execute(
            "INSERT INTO egoejo_contribution (user_id, project_id, amount, created_at)"
            " SELECT (SELECT min(id) FROM auth_user) + (g * 7919) %% %s,"
            "        (SELECT min(id) FROM egoejo_project) + (g * 31) %% %s,"
            "        ((g %% 5000) + 1) / 100.0, now() - (g || ' seconds')::interval"
            " FROM generate_series(1, %s) g",
            [users, projects, contributions],
        )
        cursor.execute("ANALYZE")


def naive_refresh_all() -> None:
    """The seed's approach: a Python loop over members, a few queries each."""
    from django.contrib.auth import get_user_model
    from django.db.models import Count, Max, Sum
    from django.utils import timezone

    from app.models import Contribution, ImpactDashboard

    for user in get_user_model().objects.all():
        contributions = Contribution.objects.filter(user=user)
        totals = contributions.aggregate(total=Sum("amount"), count=Count("id"), last=Max("created_at"))
        projects = contributions.values("project").distinct().count()
        ImpactDashboard.objects.update_or_create(
            user=user,
            defaults={
                "total_contributed": totals["total"] or Decimal("0"),
                "contributions_count": totals["count"],
                "projects_supported": projects,
                "last_contribution_at": totals["last"],
                "computed_at": timezone.now(),
            },
        )


def count_queries(func) -> int:  # type: ignore[no-untyped-def]
    from django.db import connection

    count = 0

    def counter(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        nonlocal count
        count += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(counter):
        func()
    return count


def burst(members: int, per_member: int) -> float:
    """Seconds from the first of members*per_member contributions to every dashboard up to date."""
    import django_rq
    from django.contrib.auth import get_user_model

    from app.models import ImpactDashboard, Project
    from app.queueing.workers import InProcessWorker
    from app.services.contributions import contribute

    user_ids = list(get_user_model().objects.order_by("pk").values_list("pk", flat=True)[:members])
    project_id = Project.objects.values_list("pk", flat=True).first()
    started_at = time.perf_counter()
    for _round in range(per_member):
        for user_id in user_ids:
            contribute(user_id=user_id, project_id=project_id, amount="1.00")
    queue = django_rq.get_queue("metrics")
    queued = queue.count
    InProcessWorker([queue], connection=queue.connection).work(burst=True)
    elapsed = time.perf_counter() - started_at
    from django.db.models import Count

    from app.models import Contribution

    expected = dict(Contribution.objects.filter(user_id__in=user_ids).values_list("user_id").annotate(n=Count("id")))
    stored = dict(ImpactDashboard.objects.filter(user_id__in=user_ids).values_list("user_id", "contributions_count"))
    assert stored == expected, "a dashboard is behind its contributions"
    print(f"  burst: {members * per_member} contributions by {members} members -> {queued} refresh jobs queued")
    return elapsed


def main() -> None:
    args = parse_args(__doc__ or "")
    users, contributions, repeat = run_size(args, (10_000, 100_000, 3), (500, 5_000, 1), (50, 500, 1))
    with private_pg_database(BENCH_DB) as database_url, private_redis_db() as db:
        setup_django(DATABASE_URL=database_url, RQ_REDIS_DB=str(db))
        from django.core.management import call_command

        from app.services import impact

        call_command("migrate", verbosity=0)
        generate(users, contributions)
        naive = [time.perf_counter()]
        naive_q = count_queries(naive_refresh_all)
        naive_s = time.perf_counter() - naive[0]
        set_based = []
        for _ in range(repeat):
            started = time.perf_counter()
            impact.refresh_all()
            set_based.append(time.perf_counter() - started)
        set_q = count_queries(impact.refresh_all)
        print_table(
            f"refresh of every dashboard: {users:,} members, {contributions:,} contributions (PostgreSQL)",
            ["approach", "seconds (median)", "queries", "vs naive"],
            [
                ["naive per-member loop (baseline)", f"{naive_s:.2f}", naive_q, "1.0x"],
                ["set-based INSERT…SELECT…ON CONFLICT", f"{median(set_based):.3f}", set_q, ratio(naive_s, median(set_based))],
            ],
        )
        members, per_member = run_size(args, (100, 10), (20, 5), (5, 2))
        burst_s = burst(members, per_member)
        print(f"  all {members} dashboards up to date {burst_s:.2f} s after the first contribution")


if __name__ == "__main__":
    main()
