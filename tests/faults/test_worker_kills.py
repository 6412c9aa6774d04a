"""Workers SIGKILLed (main process and work-horse together) again and again: no job lost, no effect twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.factories import jpeg_bytes
from tests.faults.stack import Stack
from tests.settle import outbox_pending, settle
from tests.smtp import SmtpSink

pytestmark = pytest.mark.e2e

MAILS, REFRESHES, IMAGES = 300, 600, 100

ENQUEUE = f"""
from django.contrib.auth import get_user_model
from django.db import transaction
from app.jobs import emails, images, metrics
from tests.enqueue import enqueue
from app.models import Contribution, Project
User = get_user_model()
users = User.objects.bulk_create([User(username=f"u{{i}}", email=f"u{{i}}@example.org") for i in range(50)])
project = Project.objects.create(title="P", slug="p")
Contribution.objects.bulk_create([Contribution(user=u, project=project, amount=i + 1) for i, u in enumerate(users)])
with transaction.atomic():
    for i in range({MAILS}):
        enqueue(emails.send_email, f"r{{i}}@example.org", f"Mail {{i}}", "<p>hello</p>")
    ids = list(User.objects.values_list("pk", flat=True))
    for i in range({REFRESHES}):
        enqueue(metrics.update_impact_dashboard_metrics, ids[i % len(ids)])
    for i in range({IMAGES}):
        enqueue(images.process_image, f"uploads/originals/{{i % 5}}.jpg")
print("ok")
"""


def test_repeated_sigkills_lose_nothing_and_duplicate_nothing(tmp_path: Path, private_redis):
    sink = SmtpSink()
    sink.rcpt_delay = 0.05  # every mail spends 50 ms mid-transaction: a kill lands mid-job
    sink.start()
    stack = Stack(tmp_path, private_redis, sink.port)
    originals = Path(stack.env["EGOEJO_VAR_DIR"]) / "media" / "uploads" / "originals"
    originals.mkdir(parents=True)
    for index in range(5):
        (originals / f"{index}.jpg").write_bytes(jpeg_bytes((1600, 1200)))
    try:
        assert stack.shell(ENQUEUE) == "ok"
        total = MAILS + REFRESHES + IMAGES
        assert stack.query("select count(*) from egoejo_backgroundjob") == [(total,)]
        stack.start_scheduler()
        stack.start_workers(2)
        kills = 0
        last_kill = time.monotonic()
        for _ in range(4):
            sink.rcpt_started.clear()
            assert sink.rcpt_started.wait(60), stack.log_text()
            stack.kill_workers()  # both: the one in the SMTP transaction dies mid-job
            kills += 1
            last_kill = time.monotonic()
            time.sleep(0.5)
            stack.start_workers(2)
        sink.rcpt_delay = 0.0
        # A generous bound, not a timing goal: the recovery time is printed (docs/reliability.md).
        deadline = last_kill + 180
        def pending() -> int:
            return stack.query("select count(*) from egoejo_backgroundjob where state != 'finished'")[0][0]
        while time.monotonic() < deadline and pending():
            time.sleep(0.5)
        recovered_in = time.monotonic() - last_kill
        assert pending() == 0, (pending(), stack.log_text())
        print(f"{kills} kills; all {total} jobs done {recovered_in:.1f} s after the last kill")
        # Nothing twice is counted once nothing can add an effect (tests/settle.py), not as the last row closes.
        settle(stack.redis, outbox_pending(stack.database_url), describe=stack.log_text)

        recipients = sink.recipients()
        assert len(set(recipients)) == MAILS  # nothing lost
        assert len(recipients) == MAILS  # nothing twice
        assert stack.query("select count(*) from egoejo_sentmail") == [(MAILS,)]
        dashboards = dict(stack.query("select user_id, total_contributed from egoejo_impactdashboard"))
        expected = dict(stack.query("select user_id, sum(amount) from egoejo_contribution group by user_id"))
        assert {k: float(v) for k, v in dashboards.items()} == {k: float(v) for k, v in expected.items()}
        renditions = Path(stack.env["EGOEJO_VAR_DIR"]) / "media" / "uploads" / "renditions"
        # One published set per original (killed runs' leftovers removed), no half-written file.
        assert sorted(p.name for p in renditions.glob("*/*/*")) == sorted(
            name for _ in range(5) for name in ("display-1440x1080.jpg", "display-1440x1080.webp", "thumbnail-320x240.jpg")  # 1600x1200 fitted into 1920x1080
        )
        assert not list(renditions.glob("*/*/.*.tmp"))
    finally:
        stack.stop()
        sink.stop()
