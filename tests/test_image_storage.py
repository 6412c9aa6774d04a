"""Media through the storage API: the images API, and the same upload → job → renditions on a real S3 server.

Local disk is what `scripts/run` uses; S3 (moto's server process here, MinIO or AWS in production)
is what lets an images worker on another host do the job without the web host's disk.
"""

from __future__ import annotations

import io
import urllib.request
from urllib.parse import urlsplit

import django_rq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rq.job import JobStatus

from app.jobs import images
from app.models import UploadedImage
from tests.enqueue import enqueue
from tests.factories import jpeg_bytes, make_user

pytestmark = pytest.mark.django_db
NAMES = {"display", "display_webp", "thumbnail"}


def portrait_with_gps() -> bytes:
    """What a phone sends: pixels stored landscape, EXIF orientation 6 (rotate to portrait), a GPS position."""
    image = Image.open(io.BytesIO(jpeg_bytes((4000, 3000), orientation=6)))
    exif = image.getexif()
    exif.get_ifd(0x8825).update({1: "N", 2: (48.0, 51.0, 30.0), 3: "E", 4: (2.0, 17.0, 40.0)})
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def upload_and_process(client, run_worker, django_capture_on_commit_callbacks, data: bytes) -> dict:  # type: ignore[no-untyped-def,type-arg]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/images/", {"image": SimpleUploadedFile("holiday.jpg", data)})
    assert response.status_code == 202, response.content
    worker = run_worker("images")
    job = worker.queue_class("images", connection=worker.connection).fetch_job(response.json()["job_id"])
    assert job.get_status() == JobStatus.FINISHED, job.latest_result().exc_string if job.latest_result() else None
    body = client.get(f"/api/images/{response.json()['id']}/").json()
    assert body["status"] == "done", body
    return body


def check_renditions(body: dict, fetch) -> None:  # type: ignore[no-untyped-def,type-arg]
    """The same image checks as tests/test_images.py, on what a client downloads from the URLs."""
    assert (body["width"], body["height"]) == (3000, 4000)  # as displayed, not the stored 4000x3000
    assert set(body["renditions"]) == NAMES
    expected = {"display": ((810, 1080), "JPEG"), "display_webp": ((810, 1080), "WEBP"), "thumbnail": ((240, 320), "JPEG")}
    for name, ((width, height), fmt) in expected.items():
        entry = body["renditions"][name]
        assert (entry["width"], entry["height"]) == (width, height), name
        assert urlsplit(entry["url"]).scheme in ("http", "https") and urlsplit(entry["url"]).netloc, entry["url"]
        path = urlsplit(entry["url"]).path
        assert path.endswith(f"-{width}x{height}.{'webp' if fmt == 'WEBP' else 'jpg'}"), path
        assert ("thumbnail" in path) == (name == "thumbnail")
        data = fetch(entry["url"])
        image = Image.open(io.BytesIO(data))
        assert image.format == fmt and image.size == (width, height), name
        assert not image.getexif(), name  # no orientation, no GPS, nothing
        red, green, blue = image.convert("RGB").getpixel((width - width // 16, height // 16))
        assert blue > 200 and red < 60, (name, image.convert("RGB").getpixel((width - width // 16, height // 16)))
    assert "originals" not in str(body)  # the original is private: no key, no URL


def test_the_images_api_gives_absolute_urls_displayed_sizes_and_honest_names(client, run_worker, django_capture_on_commit_callbacks, media_root):
    owner = make_user("ana")
    client.force_login(owner)
    body = upload_and_process(client, run_worker, django_capture_on_commit_callbacks, portrait_with_gps())

    def fetch(url: str) -> bytes:
        assert url.startswith("http://testserver/media/uploads/renditions/"), url
        response = client.get(urlsplit(url).path)
        assert response.status_code == 200
        return b"".join(response.streaming_content)

    check_renditions(body, fetch)
    record = UploadedImage.objects.get(pk=body["id"])
    # Served to its owner only, and never the original (private: it keeps the upload's EXIF).
    assert client.get(f"/media/{record.original_path}").status_code == 404
    display_path = urlsplit(body["renditions"]["display"]["url"]).path
    client.force_login(make_user("someone-else"))
    assert client.get(display_path).status_code == 404
    client.logout()
    assert client.get(display_path).status_code == 401


def test_deleting_an_image_removes_its_files(client, run_worker, django_capture_on_commit_callbacks, media_root):
    client.force_login(make_user("ana"))
    body = upload_and_process(client, run_worker, django_capture_on_commit_callbacks, jpeg_bytes((1600, 1200)))
    assert [p for p in media_root.rglob("*") if p.is_file()]
    with django_capture_on_commit_callbacks(execute=True):
        UploadedImage.objects.filter(pk=body["id"]).delete()
    assert [p for p in media_root.rglob("*") if p.is_file()] == []


def test_s3_upload_job_and_renditions_in_the_bucket(client, run_worker, django_capture_on_commit_callbacks, s3_server, s3_bucket, media_root):
    client.force_login(make_user("ana"))
    body = upload_and_process(client, run_worker, django_capture_on_commit_callbacks, portrait_with_gps())

    def fetch(url: str) -> bytes:
        assert url.startswith(s3_server.endpoint + f"/{s3_bucket}/uploads/renditions/"), url
        assert "X-Amz-Signature=" in url  # a private bucket: signed, expiring URLs
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read()

    check_renditions(body, fetch)
    objects = s3_server.keys(s3_bucket)
    record = UploadedImage.objects.get(pk=body["id"])
    assert record.original_path in objects and len(objects) == 4  # the original and one set of 3
    assert not [p for p in media_root.rglob("*") if p.is_file()]  # nothing went to the local disk
    unsigned = f"{s3_server.endpoint}/{s3_bucket}/{record.original_path}"
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(unsigned, timeout=10)  # noqa: S310  (the bucket refuses anonymous reads)

    # Running the job again gives the same objects, byte for byte.
    with django_capture_on_commit_callbacks(execute=True):
        enqueue(images.process_image, record.original_path)
    run_worker("images")
    assert s3_server.keys(s3_bucket) == objects


def s3_client_hook(event: str, handler) -> None:  # type: ignore[no-untyped-def]
    from django.core.files.storage import default_storage

    default_storage.connection.meta.client.meta.events.register(event, handler)


def test_s3_readers_see_the_old_set_or_the_new_one_and_the_old_one_goes(client, run_worker, django_capture_on_commit_callbacks, s3_server, s3_bucket):
    client.force_login(make_user("ana"))
    first = upload_and_process(client, run_worker, django_capture_on_commit_callbacks, jpeg_bytes((4000, 3000)))
    record = UploadedImage.objects.get(pk=first["id"])
    old_keys = {entry["key"] for entry in record.renditions.values()}
    seen: list[set[str]] = []

    def while_writing(**kwargs) -> None:  # type: ignore[no-untyped-def]
        # A reader at this instant: what the record names must all be there, complete.
        current = UploadedImage.objects.get(pk=record.pk).renditions
        present = set(s3_server.keys(s3_bucket))
        assert {entry["key"] for entry in current.values()} <= present
        seen.append({entry["key"] for entry in current.values()})

    s3_client_hook("after-call.s3.PutObject", while_writing)
    with django_capture_on_commit_callbacks(execute=True):
        enqueue(images.process_image, record.original_path, 1280, 720, 80)  # a new set: other sizes
    run_worker("images")
    assert seen and all(keys == old_keys for keys in seen)  # during the job: the old set, whole
    record.refresh_from_db()
    new_keys = {entry["key"] for entry in record.renditions.values()}
    assert record.renditions["display"]["width"] == 960 and not new_keys & old_keys
    assert set(s3_server.keys(s3_bucket)) == new_keys | {record.original_path}  # the old set is gone


def test_s3_a_job_that_fails_mid_write_leaves_no_orphan(client, run_worker, django_capture_on_commit_callbacks, s3_server, s3_bucket):
    from botocore.exceptions import EndpointConnectionError

    client.force_login(make_user("ana"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/images/", {"image": SimpleUploadedFile("a.jpg", jpeg_bytes((2000, 1500)))})
    original = UploadedImage.objects.get(pk=response.json()["id"]).original_path
    puts = []

    def storage_goes_away(**kwargs) -> None:  # type: ignore[no-untyped-def]
        puts.append(1)
        if len(puts) == 3:  # the third rendition's write: the storage is unreachable
            raise EndpointConnectionError(endpoint_url=s3_server.endpoint)

    s3_client_hook("before-call.s3.PutObject", storage_goes_away)
    run_worker("images")
    assert len(puts) >= 3
    assert set(s3_server.keys(s3_bucket)) == {original}  # the two renditions written were removed
    # An unreachable store is a passing condition: the job is retried later, the image still pending.
    assert UploadedImage.objects.get(pk=response.json()["id"]).status == UploadedImage.Status.PENDING
    queue = django_rq.get_queue("images")
    assert queue.scheduled_job_registry.get_job_ids() == [response.json()["job_id"]]
    assert queue.fetch_job(response.json()["job_id"]).get_status() == JobStatus.SCHEDULED
