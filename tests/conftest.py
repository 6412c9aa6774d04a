from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings

from app.queueing.workers import InProcessWorker
from tests import redis_db
from tests.ci import under_ci
from tests.e2e import databases as stack_databases_module
from tests.s3 import S3Server
from tests.smtp import SmtpSink, point_mail_at

# -- no skip under CI ---------------------------------------------------------------------------
# A test that needs a service (a binary, PostgreSQL, root for namespaces) skips where it is
# missing locally; under CI (`CI` set to anything truthy) every such skip fails the run, here,
# in one place. Held by tests/test_ci_hook.py.


def _fail_the_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail") and under_ci():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where nothing may skip: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    _fail_the_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    outcome = yield
    _fail_the_skip(outcome.get_result())


@pytest.fixture(autouse=True, scope="module")
def stack_databases_of_module() -> Iterator[None]:
    """The PostgreSQL databases a module-scoped fixture's stack got (tests/e2e/databases.py): dropped with the module."""
    since = stack_databases_module.mark()
    yield
    stack_databases_module.drop_created(since)


@pytest.fixture(autouse=True)
def stack_databases() -> Iterator[None]:
    """The PostgreSQL databases the test's process stacks got: dropped when it ends, after the
    fixtures it asked for have stopped their processes."""
    since = stack_databases_module.mark()
    yield
    stack_databases_module.drop_created(since)


def pytest_sessionfinish(session: pytest.Session) -> None:
    stack_databases_module.drop_created()
    stack_databases_module.drop_template()


@pytest.fixture(scope="session")
def redis_db_index() -> Iterator[int]:
    """A Redis DB for this session's queues: empty when claimed, flushed when released."""
    db = redis_db.claim_empty_db()
    redis_db.create_role_users()  # the processes tests start connect as their roles (tests/e2e/processes.py)
    url = f"{redis_db.redis_url()}/{db}"
    settings.RQ_QUEUES.connection["URL"] = url
    settings.RQ_QUEUES_URL = url
    settings.THROTTLE_REDIS_URL = url  # throttle counters too: flushed around each test
    yield db
    redis_db.release_db(db)
    redis_db.delete_role_users()


@pytest.fixture(autouse=True)
def redis_conn(redis_db_index: int) -> Iterator[redis.Redis]:
    """Every test starts and ends with an empty queue DB."""
    from app.queueing import stats as job_metrics

    connection = redis.Redis.from_url(f"{redis_db.redis_url()}/{redis_db_index}")
    connection.flushdb()
    job_metrics._announced.clear()  # what this process announced went with the flush
    yield connection
    connection.flushdb()


@pytest.fixture(autouse=True)
def media_root(tmp_path: Path, settings) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def run_worker(redis_conn: redis.Redis):  # type: ignore[no-untyped-def]
    """Drain the given queues with a real worker (in-process, burst) and return it."""

    def run(*queue_names: str) -> InProcessWorker:
        import django_rq

        names = queue_names or ("emails", "images", "metrics")
        queues = [django_rq.get_queue(name) for name in names]
        worker = InProcessWorker(queues, connection=redis_conn)
        worker.work(burst=True, with_scheduler=False)
        return worker

    return run


@pytest.fixture
def smtp_sink(settings) -> Iterator[SmtpSink]:  # type: ignore[no-untyped-def]
    """A real SMTP server on a free loopback port; the project's mail goes to it."""
    from app.services.mail import delivery as mail

    sink = SmtpSink()
    sink.start()
    point_mail_at(settings, sink)
    yield sink
    mail.close_connection()
    sink.stop()


@pytest.fixture
def tls_smtp_sink(settings, monkeypatch) -> Iterator[SmtpSink]:  # type: ignore[no-untyped-def]
    """The same, requiring STARTTLS with a self-signed certificate that this process trusts."""
    from app.services.mail import delivery as mail

    sink = SmtpSink(tls=True)
    sink.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(sink.cafile))
    point_mail_at(settings, sink)
    yield sink
    mail.close_connection()
    sink.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-compatible server process (moto's standalone server) on a free loopback port."""
    server = S3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, settings, monkeypatch) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Media on a fresh bucket of that server, configured as production would be: through the environment."""
    from app.settings.storage import storages_from_env

    bucket = s3_server.new_bucket()
    for name, value in s3_server.env(bucket).items():
        monkeypatch.setenv(name, value)
    settings.STORAGES = storages_from_env()
    yield bucket
