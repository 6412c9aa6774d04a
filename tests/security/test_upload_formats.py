"""Uploads of every accepted format, attacked: decompression bombs, truncated files, thousands of
frames, metadata bombs (zTXt, iCCP, EXIF), polyglots, a name that lies about the content.

The web process checks the file's structure without decoding a pixel (app/services/images/headers.py):
a refusal is a JSON 400 in the member's language, stores nothing and queues nothing; what is
accepted is processed by the image worker. The memory each costs the web process is measured by
`scripts/bench upload_memory` (docs/images.md, "Limits").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image, ImageFile

from app.models import UploadedImage
from app.queueing.models import BackgroundJob
from tests import hostile_images as hostile
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def uploader(settings) -> Client:  # type: ignore[no-untyped-def]
    settings.THROTTLE_UPLOADS_PER_USER = "100000/hour"
    client = Client(raise_request_exception=False)
    client.force_login(make_user("uploader"))
    return client


def upload(client: Client, data: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg", **headers: str):  # type: ignore[no-untyped-def]
    return client.post("/api/images/", {"image": SimpleUploadedFile(name, data, content_type=content_type)}, **headers)


def stored_files(media_root: Path) -> list[Path]:
    return [path for path in media_root.rglob("*") if path.is_file()]


LEGITIMATE = {
    "jpeg": (lambda: hostile.jpeg((640, 480)), "JPEG", (640, 480)),
    "png": (lambda: hostile.png((640, 480)), "PNG", (640, 480)),
    "png-rgba": (lambda: hostile.png((300, 200), "RGBA"), "PNG", (300, 200)),
    "apng": (lambda: hostile.apng((32, 32), 3), "PNG", (32, 32)),
    "gif": (lambda: hostile.gif((120, 80)), "GIF", (120, 80)),
    "gif-animated": (lambda: hostile.gif((120, 80), frames=12), "GIF", (120, 80)),
    "webp-lossy": (lambda: hostile.webp((640, 480)), "WEBP", (640, 480)),
    "webp-lossless": (lambda: hostile.webp((333, 222), lossless=True), "WEBP", (333, 222)),
    "webp-animated": (lambda: hostile.webp((64, 64), frames=5), "WEBP", (64, 64)),
    "webp-with-exif": (lambda: hostile.webp_with_exif(4096), "WEBP", (16, 16)),
    "jpeg-noisy": (lambda: hostile.noisy("JPEG"), "JPEG", (256, 192)),
    "png-noisy": (lambda: hostile.noisy("PNG"), "PNG", (256, 192)),
    "gif-noisy": (lambda: hostile.noisy("GIF"), "GIF", (256, 192)),
    "webp-noisy": (lambda: hostile.noisy("WEBP"), "WEBP", (256, 192)),
    # A stereo camera's multi-picture JPEG (Pillow calls it MPO): a 500 on b030e43.
    "mpo": (lambda: hostile.mpo((64, 48)), "JPEG", (64, 48)),
}


@pytest.mark.parametrize("name", LEGITIMATE)
def test_each_accepted_format_is_accepted_and_processed(uploader: Client, name: str, run_worker, django_capture_on_commit_callbacks):
    build, fmt, size = LEGITIMATE[name]
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(uploader, build())
    assert response.status_code == 202, response.content
    image = UploadedImage.objects.get()
    assert (image.original_format, image.original_width, image.original_height) == (fmt, *size)
    run_worker("images")
    image.refresh_from_db()
    assert image.status == "done", image.failure_reason


def test_the_displayed_size_follows_the_exif_orientation(uploader: Client):
    from tests.factories import jpeg_bytes

    assert upload(uploader, jpeg_bytes((64, 48), orientation=6)).json()[("width")] == 48
    assert upload(uploader, jpeg_bytes((64, 48), orientation=1)).json()["width"] == 64


# (builder, the reason's words in the English answer)
HOSTILE = {
    # Decompression bombs: a huge declared size in a tiny file.
    "jpeg-declaring-65500x65500": (lambda: hostile.jpeg_declaring(65500, 65500), "too large"),
    "png-declaring-100000x100000": (lambda: hostile.png_declaring(100_000, 100_000), "too large"),
    "png-declaring-2^31-1-wide": (lambda: hostile.png_declaring(2**31 - 1, 1), "too large"),
    "gif-declaring-65535x65535": (lambda: hostile.gif_declaring(65535, 65535), "too large"),
    "webp-declaring-16384x16384": (lambda: hostile.webp_declaring(16384, 16384), "too large"),
    # Truncated: the header is whole, the pixel data is cut.
    "jpeg-truncated": (lambda: hostile.truncated(hostile.noisy("JPEG")), "incomplete"),
    "png-truncated": (lambda: hostile.truncated(hostile.noisy("PNG")), "incomplete"),
    "gif-truncated": (lambda: hostile.truncated(hostile.noisy("GIF")), "incomplete"),
    "webp-truncated": (lambda: hostile.truncated(hostile.noisy("WEBP")), "incomplete"),
    "png-without-iend": (lambda: hostile.png_from_chunks(16, 16, end=False), "incomplete"),
    "jpeg-header-only": (lambda: hostile.jpeg((16, 16))[:200], "incomplete"),
    # Thousands of frames.
    "gif-5000-frames": (lambda: hostile.gif_with_frames(5000), "frames"),
    "apng-5000-frames": (lambda: hostile.apng((1, 1), 1001), "frames"),
    # Metadata bombs.
    "png-48-ztxt-of-1-mib": (lambda: hostile.png_with_ztxt(48), "metadata"),
    "png-iccp-of-8-mib": (lambda: hostile.png_with_iccp(8 * 1024 * 1024), "metadata"),
    "png-exif-of-6-mib": (lambda: hostile.png_with_exif(6 * 1024 * 1024), "metadata"),
    "jpeg-exif-bomb-300-app1": (lambda: hostile.jpeg_with_app_segments(300), "metadata"),
    "webp-exif-of-6-mib": (lambda: hostile.webp_with_exif(6 * 1024 * 1024), "metadata"),
    # Not an image of ours, whatever the name says; polyglots whose image part is not one.
    "html-named-png": (lambda: b"<html><script>alert(1)</script></html>", "not an image"),
    "svg-named-png": (lambda: b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "not an image"),
    "html-then-png": (lambda: b"<html>" + hostile.png(), "not an image"),
    "gif-header-then-javascript": (lambda: b"GIF89a/*\x00\x00*/=alert(1);//" + b"\x00" * 64, "not an image"),
    "bmp": (lambda: hostile._save(Image.new("RGB", (8, 8)), "BMP"), "not an image"),
    "tiff": (lambda: hostile._save(Image.new("RGB", (8, 8)), "TIFF"), "not an image"),
    "zip": (lambda: b"PK\x03\x04" + b"\x00" * 100, "not an image"),
    "riff-but-avi": (lambda: b"RIFF\x10\x00\x00\x00AVI LIST\x04\x00\x00\x00abcd", "not an image"),
    "png-chunk-length-past-the-end": (lambda: hostile.png((16, 16))[:33] + b"\x7f\xff\xff\xffIDAT" + b"\x00" * 32, "incomplete"),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_upload_is_a_400_that_stores_and_queues_nothing(uploader: Client, media_root: Path, name: str):
    build, reason = HOSTILE[name]
    response = upload(uploader, build(), name="photo.png", content_type="image/png", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert reason in response.json()["error"].lower()
    assert stored_files(media_root) == []
    assert not UploadedImage.objects.exists()
    assert not BackgroundJob.objects.exists()


def test_the_refusal_is_in_the_members_language(uploader: Client):
    french = upload(uploader, hostile.gif_with_frames(5000)).json()["error"]
    english = upload(uploader, hostile.gif_with_frames(5000), HTTP_ACCEPT_LANGUAGE="en").json()["error"]
    assert french == "Cette animation a trop d’images : au plus 1 000." and english == "This animation has too many frames: at most 1 000."


def test_the_limits_come_from_the_settings(uploader: Client, settings):
    settings.IMAGE_MAX_FRAMES = 4
    assert upload(uploader, hostile.gif((16, 16), frames=4)).status_code == 202
    assert upload(uploader, hostile.gif((16, 16), frames=5)).status_code == 400
    settings.IMAGE_MAX_METADATA_BYTES = 64 * 1024
    assert upload(uploader, hostile.jpeg_with_app_segments(2, size=30_000)).status_code == 202
    assert upload(uploader, hostile.jpeg_with_app_segments(3, size=30_000)).status_code == 400
    settings.IMAGE_MAX_PIXELS = 100 * 100
    assert upload(uploader, hostile.png((100, 100))).status_code == 202
    assert upload(uploader, hostile.png((101, 100))).status_code == 400


def test_the_name_and_content_type_never_choose_the_format(uploader: Client, media_root: Path):
    response = upload(uploader, hostile.png((20, 10)), name="evil.jpg.php", content_type="image/jpeg")
    assert response.status_code == 202
    image = UploadedImage.objects.get()
    assert image.original_format == "PNG" and image.original_path.endswith(".png")
    assert image.original_name == "evil.jpg.php"  # kept as data only
    assert [path.suffix for path in stored_files(media_root)] == [".png"]


def test_a_file_name_with_control_characters_is_kept_without_them(uploader: Client):
    assert upload(uploader, hostile.png((20, 10)), name="a\x00b\x1b[31m.png").status_code == 202
    assert UploadedImage.objects.get().original_name == "ab[31m.png"


@pytest.mark.parametrize("payload", [b"PK\x03\x04zip-archive-appended", b"<html><script>alert(1)</script></html>"])
def test_a_polyglot_image_is_served_only_as_reencoded_renditions(uploader: Client, payload: bytes, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(uploader, hostile.jpeg((64, 48)) + payload)
    assert response.status_code == 202
    run_worker("images")
    image = UploadedImage.objects.get()
    assert image.status == "done"
    for rendition in uploader.get(f"/api/images/{image.pk}/").json()["renditions"].values():
        served = b"".join(uploader.get(rendition["url"].split("testserver", 1)[-1]).streaming_content)
        assert served[:2] in (b"\xff\xd8", b"RI") and payload not in served


def test_an_exif_block_that_loops_is_read_once(uploader: Client):
    response = upload(uploader, hostile.jpeg_with_exif_loop())
    assert response.status_code == 202
    assert (response.json()["width"], response.json()["height"]) == (16, 16)


LOADS: list[str] = []


@pytest.fixture
def pixel_decodes(monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    """Every Pillow open or pixel load in this process (the web's) while the test runs."""
    LOADS.clear()
    real_open, real_load = Image.open, ImageFile.ImageFile.load

    def open_spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        LOADS.append("open")
        return real_open(*args, **kwargs)

    def load_spy(self):  # type: ignore[no-untyped-def]
        LOADS.append(f"load {self.format} {self.size}")
        return real_load(self)

    monkeypatch.setattr(Image, "open", open_spy)
    monkeypatch.setattr(ImageFile.ImageFile, "load", load_spy)
    return LOADS


@pytest.mark.parametrize("name", ["png-bomb-7000x7000", "png", "jpeg", "gif", "webp"])
def test_the_web_process_decodes_no_pixel(uploader: Client, pixel_decodes: list[str], name: str):
    # 7000 x 7000 RGBA pixels (49 M, under the limit) in 190 KiB: on b030e43 the upload view decoded
    # it (PngImageFile.getexif() loads the image to look for EXIF after the pixels): 196 MB.
    build = {
        "png-bomb-7000x7000": hostile.png_bomb_within_the_pixel_limit,
        "png": lambda: hostile.png((640, 480)),
        "jpeg": lambda: hostile.jpeg((640, 480)),
        "gif": lambda: hostile.gif((64, 64), frames=3),
        "webp": lambda: hostile.webp((640, 480)),
    }[name]
    data = build()
    pixel_decodes.clear()
    response = upload(uploader, data)
    assert response.status_code == 202
    assert [call for call in pixel_decodes if call.startswith("load")] == []
