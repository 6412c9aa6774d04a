"""What process_image makes of an upload: sizes, orientation, colour, metadata, idempotence."""

from __future__ import annotations

import io
import math

import pytest
from PIL import Image, ImageChops, ImageCms, ImageStat
from rq.job import JobStatus

from app.jobs import images
from app.models import UploadedImage
from app.queueing import PermanentJobError
from app.services.images import pipeline as image_pipeline
from tests.enqueue import enqueue
from tests.factories import jpeg_bytes

LIMIT = 50_000_000


def render(data: bytes, box: tuple[int, int] = (1920, 1080), quality: int = 85) -> dict[str, image_pipeline.Rendition]:
    return {r.name: r for r in image_pipeline.render(data, box[0], box[1], quality, LIMIT)}


def decoded(rendition: image_pipeline.Rendition) -> Image.Image:
    return Image.open(io.BytesIO(rendition.data))


def psnr(a: Image.Image, b: Image.Image) -> float:
    mse = sum(ImageStat.Stat(ImageChops.difference(a, b).point(lambda v: v * v)).mean) / 3
    return float("inf") if mse == 0 else 10 * math.log10(255**2 / mse)


def textured(size: tuple[int, int]) -> Image.Image:
    """Detail at every scale, so that a wrong decode or resample shows in the PSNR."""
    return Image.merge("RGB", [Image.effect_noise((size[0] // 32 + 1, size[1] // 32 + 1), 80).resize(size, Image.Resampling.BICUBIC) for _ in range(3)])


def encoded(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("size", "fitted"),
    [((4000, 3000), (1440, 1080)), ((6000, 4000), (1620, 1080)), ((4001, 2999), (1441, 1080)), ((3003, 5005), (648, 1080))],
)
def test_a_photo_is_fitted_into_the_box_with_a_webp_and_a_thumbnail(size, fitted):
    source = textured(size)
    out = render(encoded(source, quality=92))
    assert (out["fitted"].width, out["fitted"].height) == fitted
    assert decoded(out["fitted"]).format == "JPEG" and decoded(out["fitted"]).size == fitted
    assert decoded(out["webp"]).format == "WEBP" and decoded(out["webp"]).size == fitted
    assert max(decoded(out["thumbnail"]).size) == image_pipeline.THUMBNAIL_SIZE
    # The scaled decode (3/8 for these sizes) and BICUBIC lose nothing against a full-resolution
    # LANCZOS reduction of the original pixels: the only loss left is the JPEG encoding's own.
    reference = source.resize(fitted, Image.Resampling.LANCZOS)
    encoding_loss_only = psnr(Image.open(io.BytesIO(encoded(reference, quality=85))).convert("RGB"), reference)
    assert psnr(decoded(out["fitted"]).convert("RGB"), reference) >= encoding_loss_only - 0.5


def test_a_jpeg_is_decoded_at_three_eighths_when_that_still_covers_the_box():
    image = image_pipeline.open_checked(encoded(textured((4003, 3001))), LIMIT)
    content = image_pipeline._reduce_at_decoder(image, (1439, 1080))
    image.load()
    assert image.size == (1502, 1126)  # ceil(size * 3 / 8): libjpeg's own output size
    assert content == (0, 0, 4003 * 3 / 8, 3001 * 3 / 8)  # what holds the picture, to resample from


def test_a_small_image_is_never_upscaled():
    out = render(jpeg_bytes((640, 480)))
    assert decoded(out["fitted"]).size == (640, 480)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_and_then_dropped(orientation):
    # jpeg_bytes paints the top-left quarter blue as the camera stored it; each orientation
    # value moves that corner to a known place on screen.
    corner_on_screen = {1: "tl", 2: "tr", 3: "br", 4: "bl", 5: "tl", 6: "tr", 7: "br", 8: "bl"}[orientation]
    out = decoded(render(jpeg_bytes((4000, 3000), orientation=orientation))["fitted"]).convert("RGB")
    width, height = out.size
    assert (width > height) == (orientation < 5)  # 5–8 swap the axes
    x = width // 16 if corner_on_screen in ("tl", "bl") else width - width // 16
    y = height // 16 if corner_on_screen in ("tl", "tr") else height - height // 16
    red, green, blue = out.getpixel((x, y))
    assert blue > 200 and red < 60, (orientation, out.getpixel((x, y)))
    assert 0x0112 not in Image.open(io.BytesIO(render(jpeg_bytes(orientation=orientation))["fitted"].data)).getexif()


def test_metadata_is_stripped_and_the_colour_profile_kept():
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"
    exif.get_ifd(0x8825).update({1: "N", 2: (48.0, 51.0, 0.0)})  # GPS latitude
    source = encoded(textured((2400, 1600)), exif=exif.tobytes(), icc_profile=profile, comment=b"secret comment")
    assert b"secret comment" in source and b"CameraMaker" in source
    for name, rendition in render(source).items():
        image = decoded(rendition)
        assert image.info.get("icc_profile") == profile, name
        assert not image.getexif(), name
        assert "comment" not in image.info and "xmp" not in image.info, name
        assert b"secret comment" not in rendition.data and b"CameraMaker" not in rendition.data, name


def test_transparency_is_flattened_on_white():
    rgba = Image.new("RGBA", (800, 600), (0, 128, 0, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 400, 300))
    out = decoded(render(encoded(rgba, "PNG"))["fitted"])
    assert out.mode == "RGB"
    assert all(channel > 245 for channel in out.getpixel((700, 500)))  # transparent → white, not green or black
    assert out.getpixel((100, 100))[2] > 240  # the opaque part is kept


def test_an_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (300, 200), color) for color in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    gif = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    red, green, blue = decoded(render(gif)["fitted"]).convert("RGB").getpixel((150, 100))
    assert red > 200 and green < 60 and blue < 60


@pytest.mark.parametrize(("box", "quality"), [((0, 1080), 85), ((1920, 20_000), 85), ((1920, 1080), 0), ((1920, 1080), 96), ((1920, 1080), "85")])
def test_parameters_are_validated(box, quality):
    with pytest.raises(PermanentJobError):
        image_pipeline.render(jpeg_bytes((400, 300)), box[0], box[1], quality, LIMIT)


@pytest.mark.django_db
def test_processing_twice_gives_the_same_files_and_records_them(media_root, run_worker, django_capture_on_commit_callbacks):
    from django.contrib.auth import get_user_model

    owner = get_user_model().objects.create_user("ana", "ana@example.org", "pw-long-enough-1")
    original = media_root / "uploads" / "originals" / "photo.jpg"
    original.parent.mkdir(parents=True)
    original.write_bytes(encoded(textured((4000, 3000))))
    record = UploadedImage.objects.create(owner=owner, original_path="uploads/originals/photo.jpg", original_format="JPEG", original_width=4000, original_height=3000)

    contents = []
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            job_id = enqueue(images.process_image, "uploads/originals/photo.jpg")
        worker = run_worker("images")
        assert worker.queue_class("images", connection=worker.connection).fetch_job(job_id).get_status() == JobStatus.FINISHED
        files = sorted(path for path in (media_root / "uploads" / "renditions" / "photo").rglob("*") if path.is_file())
        contents.append({str(path.relative_to(media_root)): path.read_bytes() for path in files})
    assert contents[0] == contents[1]
    names = sorted(key.rsplit("/", 1)[1] for key in contents[0])
    assert names == ["display-1440x1080.jpg", "display-1440x1080.webp", "thumbnail-320x240.jpg"]
    assert len({key.rsplit("/", 2)[1] for key in contents[0]}) == 1  # one version prefix
    record.refresh_from_db()
    assert record.status == UploadedImage.Status.DONE
    display = record.renditions["display"]
    assert display["key"].startswith("uploads/renditions/photo/") and display["key"].endswith("/display-1440x1080.jpg")
    assert (display["width"], display["height"], display["content_type"]) == (1440, 1080, "image/jpeg")
    assert (record.renditions["thumbnail"]["width"], record.renditions["thumbnail"]["height"]) == (320, 240)
