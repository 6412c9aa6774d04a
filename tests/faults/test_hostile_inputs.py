"""A corpus of hostile inputs: each fails once with a clear reason, and the worker goes on."""

from __future__ import annotations

import io

import django_rq
import pytest
from PIL import Image
from rq import Queue
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from app.jobs import emails, images, metrics
from app.queueing import UndeclaredJobError
from tests.enqueue import enqueue
from tests.factories import jpeg_bytes

pytestmark = pytest.mark.django_db


def gif_animation() -> bytes:
    frames = [Image.new("P", (300, 200), color) for color in (1, 2, 3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def png_bomb() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(buffer, "PNG", optimize=True)  # 144 Mpx in a few hundred KB
    return buffer.getvalue()


def test_hostile_corpus(media_root, smtp_sink, run_worker, django_capture_on_commit_callbacks):
    originals = media_root / "uploads" / "originals"
    originals.mkdir(parents=True)
    files = {
        "truncated.jpg": jpeg_bytes((1600, 1200))[:4000],
        "empty.jpg": b"",
        "renamed.jpg": b"#!/bin/sh\necho this is not an image\n",
        "bomb.png": png_bomb(),
        "animated.gif": gif_animation(),
    }
    for name, data in files.items():
        (originals / name).write_bytes(data)
    (originals / "escape.jpg").symlink_to("/etc/passwd")
    smtp_sink.reject_recipients = {"nobody@nonexistent.invalid"}
    expected_failures = {
        ("images", "uploads/originals/truncated.jpg"): "corrupt or truncated image",
        ("images", "uploads/originals/empty.jpg"): "not a JPEG, PNG, WebP or GIF image",
        ("images", "uploads/originals/renamed.jpg"): "not a JPEG, PNG, WebP or GIF image",
        ("images", "uploads/originals/bomb.png"): "pixel limit",
        ("images", "uploads/originals/escape.jpg"): "leaves the media root",
        ("images", "../../etc/passwd"): "must be relative to the media root",
        ("images", "/etc/passwd"): "must be relative to the media root",
        ("emails", "not-an-address"): "invalid e-mail address",
        ("emails", "nobody@nonexistent.invalid"): "550",
    }
    job_ids = {}
    with django_capture_on_commit_callbacks(execute=True):
        for (queue, value), _ in expected_failures.items():
            if queue == "images":
                job_ids[(queue, value)] = enqueue(images.process_image, value)
            else:
                job_ids[(queue, value)] = enqueue(emails.send_email, value, "Hi", "<p>x</p>")
        animated = enqueue(images.process_image, "uploads/originals/animated.gif")
        missing_user = enqueue(emails.send_welcome_email, 987654)
        missing_member = enqueue(metrics.update_impact_dashboard_metrics, 987654)
        good = enqueue(emails.send_email, "fine@example.org", "Hi", "<p>x</p>")
    with pytest.raises(UndeclaredJobError):  # refused where it is enqueued ...
        django_rq.get_queue("emails").enqueue_call("app.jobs.emails.no_such_function")
    # ... and, written into Redis by other means, refused by the worker without importing it
    unknown = Queue("emails", connection=django_rq.get_queue("emails").connection, serializer=JSONSerializer).enqueue_call(
        "app.jobs.emails.no_such_function"
    )
    run_worker("emails", "images", "metrics")

    for (queue, value), reason in expected_failures.items():
        job = django_rq.get_queue(queue).fetch_job(job_ids[(queue, value)])
        assert job.get_status() == JobStatus.FAILED, value
        assert job.retries_left == 0, value  # failed once, no retry spent
        assert reason in job.latest_result().exc_string.strip().splitlines()[-1], (value, job.latest_result().exc_string)
    unknown_job = django_rq.get_queue("emails").fetch_job(unknown.id)
    assert unknown_job.get_status() == JobStatus.FAILED
    assert "no_such_function" in unknown_job.latest_result().exc_string
    for queue in ("emails", "images", "metrics"):
        assert django_rq.get_queue(queue).scheduled_job_registry.count == 0  # nothing retried
    assert django_rq.get_queue("images").fetch_job(animated).get_status() == JobStatus.FINISHED  # first frame
    assert django_rq.get_queue("emails").fetch_job(missing_user).return_value()["sent"] is False
    assert django_rq.get_queue("metrics").fetch_job(missing_member).return_value()["updated"] is False
    assert django_rq.get_queue("emails").fetch_job(good).get_status() == JobStatus.FINISHED
    assert smtp_sink.recipients() == ["fine@example.org"]
