"""Two worker hosts (network namespaces) on one Redis and one PostgreSQL; one is cut off mid-job.

Its job is re-run by the other host within 60 s, with one effect (one mail at the SMTP server),
and when the link comes back the cut-off worker commits no second effect. With media on S3, an
images host that cannot see the web host's disk processes an upload.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.e2e.databases import PG_ADMIN_URL, private_pg_database
from tests.e2e.processes import ROOT, manage, stack_env
from tests.faults.servers import RedisServer
from tests.scale.netns import TcpForward, make_hosts, remove_hosts
from tests.settle import outbox_pending, settle
from tests.smtp import SmtpSink, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def database() -> str:  # type: ignore[misc]
    """The name of a fresh PostgreSQL database (the hosts reach it through a forward of their own)."""
    with private_pg_database("egoejo_hosts", "the worker-hosts test") as url:
        yield url.rsplit("/", 1)[1]


def test_a_host_cut_off_mid_job_loses_nothing_and_duplicates_nothing(tmp_path: Path, database: str):
    hosts = make_hosts(2)
    redis_server = RedisServer(
        tmp_path / "redis", appendonly=True, extra_binds=tuple(h.root_address for h in hosts), password=uuid.uuid4().hex
    )
    sinks = [SmtpSink(host=h.root_address) for h in hosts]
    pg_port = free_port()
    forward = TcpForward([h.root_address for h in hosts], pg_port, ("127.0.0.1", 5432))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        redis_server.start()
        forward.start()
        for sink in sinks:
            sink.start()
        sinks[0].rcpt_delay = 3.0  # host 0's mail is mid-transaction when its link goes down
        local = stack_env(
            tmp_path, redis_server.url, 2,
            DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{database}", LOG_LEVEL="INFO",
        )
        manage(local, "migrate", "--noinput")

        def host_env(index: int) -> dict[str, str]:
            root = hosts[index].root_address
            return {
                **local,
                "REDIS_URL": f"redis://:{redis_server.password}@{root}:{redis_server.port}",
                "DATABASE_URL": f"postgres://postgres@{root}:{pg_port}/{database}",
                "EMAIL_URL": f"smtp://{root}:{sinks[index].port}?timeout=10",
            }

        logs = tmp_path / "logs"
        logs.mkdir()

        def start(argv: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
            process = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=open(logs / f"{name}.log", "wb"), stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            processes.append(process)
            return process

        def log_text() -> str:
            return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(logs.glob("*.log")))

        start([sys.executable, "manage.py", "rqscheduler", "--interval", "2"], local, "scheduler")
        # The scheduler also fires the recurring dashboard refresh (every 15 min, UTC) onto the
        # metrics queue; at :00, :15, :30 or :45 it lands inside this test and must drain as in
        # any stack, or the settle below waits for it in vain.
        start([sys.executable, "manage.py", "rqworker", "metrics"], local, "metrics-worker")
        cut_off = start(hosts[0].command([sys.executable, "manage.py", "rqworker", "emails"]), host_env(0), "host0-worker")
        job_id = manage(local, "shell", "-c", """
from app.jobs import emails
from tests.enqueue import enqueue
print(enqueue(emails.send_email, "cut@example.org", "Hi", "<p>x</p>"))
""").stdout.strip().splitlines()[-1]
        assert job_id
        assert sinks[0].rcpt_started.wait(60), log_text()
        hosts[0].cut()
        cut_at = time.monotonic()
        start(hosts[1].command([sys.executable, "manage.py", "rqworker", "emails"]), host_env(1), "host1-worker")
        sinks[1].wait_for(1, timeout=60)
        rerun_after = time.monotonic() - cut_at
        assert rerun_after < 60
        hosts[0].restore()
        # The cut-off worker wakes up and ends its attempt (its log says how: its SMTP session
        # timed out) or leaves; then nothing may be pending anywhere for a reconciler cycle
        # (tests/settle.py). Only then is "not twice" counted, not after a fixed 25 s.
        client = redis_server.client()
        cut_off_log = logs / "host0-worker.log"

        def cut_off_done() -> bool:
            text = cut_off_log.read_text(errors="replace")
            ended = (f"job {job_id} {outcome}" in text for outcome in ("succeeded", "failed", "will be retried"))
            return cut_off.poll() is not None or any(ended)

        deadline = time.monotonic() + 120
        while not cut_off_done() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert cut_off_done(), f"the cut-off worker did not end its attempt\n{log_text()}"
        settle(client, outbox_pending(local["DATABASE_URL"]), describe=log_text)
        delivered = sinks[0].recipients() + sinks[1].recipients()
        assert delivered == ["cut@example.org"], (delivered, log_text())
        with psycopg.connect(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}") as connection:
            assert connection.execute("select count(*) from egoejo_sentmail").fetchone() == (1,)
            assert connection.execute("select state from egoejo_backgroundjob").fetchall() == [("finished",)]
        print(f"host cut off mid-job: re-run on the other host {rerun_after:.1f} s after the cut; 1 mail in all")
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for sink in sinks:
            sink.stop()
        forward.stop()
        redis_server.stop()
        remove_hosts(hosts)


UPLOAD = """
import io
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from app.services.images import uploads as images
from tests.factories import jpeg_bytes

image = Image.open(io.BytesIO(jpeg_bytes((4000, 3000), orientation=6)))
owner = get_user_model().objects.create_user("ana", "ana@example.org", "pw-long-enough-1")
accepted = images.accept_upload(owner_id=owner.pk, upload=SimpleUploadedFile("portrait.jpg", jpeg_bytes((4000, 3000), orientation=6)))
print(accepted.image.pk, accepted.image.original_path)
"""


def test_an_images_host_without_the_web_hosts_disk_processes_an_upload_from_s3(tmp_path: Path, database: str):
    """Media on S3: the images worker runs on a host that reaches Redis, PostgreSQL and the object
    store over its link, and sees an empty filesystem where the web host keeps its files."""
    import io

    from PIL import Image

    from tests.s3 import S3Server

    (host,) = make_hosts(1)
    redis_server = RedisServer(tmp_path / "redis", extra_binds=(host.root_address,), password=uuid.uuid4().hex)
    s3 = S3Server(host=host.root_address)  # the root namespace reaches this address too: one endpoint for all
    pg_port = free_port()
    forward = TcpForward([host.root_address], pg_port, ("127.0.0.1", 5432))
    try:
        redis_server.start()
        s3.start()
        forward.start()
        bucket = s3.new_bucket()
        web = stack_env(
            tmp_path, redis_server.url, 2, DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{database}", LOG_LEVEL="INFO",
            **s3.env(bucket),
        )
        manage(web, "migrate", "--noinput")
        image_id, original = manage(web, "shell", "--no-imports", "-c", UPLOAD).stdout.split()[-2:]
        assert original in s3.keys(bucket)

        web_files = Path(web["EGOEJO_VAR_DIR"])
        (web_files / "media").mkdir(parents=True, exist_ok=True)
        (web_files / "media" / "web-only").write_text("the web host's disk")
        images_host = {
            **web,
            "REDIS_URL": f"redis://:{redis_server.password}@{host.root_address}:{redis_server.port}",
            "DATABASE_URL": f"postgres://postgres@{host.root_address}:{pg_port}/{database}",
        }

        def on_the_images_host(argv: list[str]) -> list[str]:
            # Its own mount namespace, with an empty tmpfs where the web host keeps var/ (media included).
            return host.command(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                 'mount -t tmpfs tmpfs "$0" && exec "$@"', str(web_files), *argv]
            )

        seen = subprocess.run(on_the_images_host(["ls", "-A", str(web_files)]), capture_output=True, text=True, timeout=30)
        assert seen.returncode == 0 and seen.stdout.strip() == "", (seen.stdout, seen.stderr)

        worker = subprocess.run(
            on_the_images_host([sys.executable, "manage.py", "rqworker", "images", "--burst"]),
            cwd=ROOT, env=images_host, capture_output=True, text=True, timeout=180,
        )
        assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
        with psycopg.connect(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}") as connection:
            status, renditions = connection.execute(
                "select status, renditions from egoejo_uploadedimage where id = %s", (int(image_id),)
            ).fetchone()
        assert status == "done", (status, worker.stdout[-3000:] + worker.stderr[-3000:])
        objects = s3.keys(bucket)
        expected = {"display": ((810, 1080), "JPEG"), "display_webp": ((810, 1080), "WEBP"), "thumbnail": ((240, 320), "JPEG")}
        for name, (size, fmt) in expected.items():
            rendered = Image.open(io.BytesIO(objects[renditions[name]["key"]]))
            assert (rendered.format, rendered.size) == (fmt, size), name
            assert not rendered.getexif(), name
        assert sorted(objects) == sorted([original, *(entry["key"] for entry in renditions.values())])
        assert [p.name for p in (web_files / "media").rglob("*") if p.is_file()] == ["web-only"]  # nothing local
        print(f"images host without the web's disk: {len(objects) - 1} renditions written to S3 from {original}")
    finally:
        forward.stop()
        s3.stop()
        redis_server.stop()
        remove_hosts([host])
