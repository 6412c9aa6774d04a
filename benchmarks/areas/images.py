"""process_image: the project's Pillow pipeline against the obvious Pillow code, same inputs, same run.

    scripts/bench images [--quick]

Inputs are generated (photo-like: smooth gradients, texture, noise). Time is the median per
image in one process; peak RSS is measured in a fresh process per (pipeline, input). PSNR
compares the fitted image with a full-resolution LANCZOS reference. pyvips (libvips) is
measured too when it is installed (optional, not a runtime dependency).

The last table is end to end through the media storage, per image: the upload's service
(probe, store the original, record, enqueue) and then the job (read the original, render, write
three renditions, publish), on local disk and on S3 (moto's server process on loopback, the
same as the tests'), interleaved in one run; peak RSS in a fresh process per storage.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, ImageChops, ImageFilter, ImageOps, ImageStat

from benchmarks.lib.common import ROOT, median, parse_args, print_table, run_size

BOX = (1920, 1080)
QUALITY = 85


def photo_like(size: tuple[int, int], seed: int = 1) -> Image.Image:
    small = (max(8, size[0] // 16), max(8, size[1] // 16))
    base = Image.merge(
        "RGB",
        [Image.effect_noise(small, 64).filter(ImageFilter.GaussianBlur(3)) for _ in range(3)],
    ).resize(size, Image.Resampling.BICUBIC)
    grain = Image.effect_noise(size, 4).convert("RGB")
    return ImageChops.add(base, grain, scale=1.0, offset=-128)


def make_inputs(directory: Path, quick: bool) -> dict[str, Path]:
    sizes = {"12 MP JPEG": (4000, 3000), "24 MP JPEG": (6000, 4000)}
    if quick:
        sizes = {"3 MP JPEG": (2000, 1500)}
    inputs = {}
    for name, size in sizes.items():
        path = directory / f"{name.split()[0]}mp.jpg"
        photo_like(size).save(path, "JPEG", quality=92)
        inputs[name] = path
    rotated = directory / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    photo_like((3000, 4000) if not quick else (1500, 2000)).save(rotated, "JPEG", quality=92, exif=exif.tobytes())
    inputs["12 MP JPEG, EXIF-rotated" if not quick else "3 MP rotated"] = rotated
    rgba = directory / "rgba.png"
    image = photo_like((2400, 1800) if not quick else (1200, 900)).convert("RGBA")
    image.putalpha(Image.linear_gradient("L").resize(image.size))
    image.save(rgba, "PNG", compress_level=1)
    inputs["4 MP RGBA PNG"] = rgba
    return inputs


def obvious(path: str) -> bytes:
    """The seed's code: open → exif_transpose → thumbnail → save."""
    image = Image.open(path)
    image = ImageOps.exif_transpose(image)
    image.thumbnail(BOX)
    if image.mode != "RGB":
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=QUALITY)
    return buffer.getvalue()


def project_fitted(path: str) -> bytes:
    from app.services.images import pipeline as image_pipeline

    return image_pipeline.render(Path(path).read_bytes(), *BOX, QUALITY, 50_000_000, renditions=("fitted",))[0].data


def project_all(path: str) -> bytes:
    from app.services.images import pipeline as image_pipeline

    return image_pipeline.render(Path(path).read_bytes(), *BOX, QUALITY, 50_000_000)[0].data


def vips(path: str) -> bytes:
    import pyvips  # type: ignore[import-not-found]

    image = pyvips.Image.thumbnail(path, BOX[0], height=BOX[1], size="down")
    return image.jpegsave_buffer(Q=QUALITY, strip=True)


PIPELINES = {"obvious Pillow (baseline)": obvious, "project: fitted JPEG": project_fitted, "project: all 3 renditions": project_all}


def psnr(candidate: bytes, path: Path) -> float:
    reference = ImageOps.exif_transpose(Image.open(path))
    if reference.mode == "RGBA":  # the project flattens transparency on white; so does the reference
        background = Image.new("RGB", reference.size, (255, 255, 255))
        background.paste(reference, mask=reference.getchannel("A"))
        reference = background
    reference = reference.convert("RGB")
    fitted = Image.open(io.BytesIO(candidate)).convert("RGB")
    reference = reference.resize(fitted.size, Image.Resampling.LANCZOS)
    mse = sum(ImageStat.Stat(ImageChops.difference(reference, fitted).point(lambda v: v * v)).mean) / 3
    return float("inf") if mse == 0 else 10 * math.log10(255**2 / mse)


def peak_rss_mb(pipeline: str, path: Path) -> float:
    code = (
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the (big) parent.
        "import sys; sys.path.insert(0, sys.argv[1]); import benchmarks.areas.images as b;"
        "b.PIPELINES.get(sys.argv[2], getattr(b, 'vips'))(sys.argv[3]);"
        "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(ROOT), pipeline, str(path)], capture_output=True, text=True, check=True, env={**os.environ, "DJANGO_SETTINGS_MODULE": "app.settings"})
    return float(out.stdout.strip().splitlines()[-1])


def _worker(args: tuple[str, str, int]) -> int:
    pipeline, path, count = args
    func = PIPELINES.get(pipeline, vips)
    for _ in range(count):
        func(path)
    return count


def two_process_rate(pipeline: str, path: Path, count: int) -> float:
    with multiprocessing.get_context("spawn").Pool(2) as pool:  # libvips threads and fork deadlock
        pool.map(_worker, [(pipeline, str(path), 1)] * 2)  # warm-up
        started = time.perf_counter()
        pool.map(_worker, [(pipeline, str(path), count)] * 2)
        return 2 * count / (time.perf_counter() - started)


def main() -> None:
    args = parse_args(__doc__ or "")
    sys.path.insert(0, str(ROOT))
    repeat = run_size(args, 11, 2, 1)
    try:
        import pyvips  # type: ignore[import-not-found]  # noqa: F401

        PIPELINES["libvips (pyvips)"] = vips
    except (ImportError, OSError):
        print("pyvips not installed: libvips not measured (pip install pyvips, apt-get install libvips42)")
    with tempfile.TemporaryDirectory(prefix="egoejo-bench-images-") as directory:
        inputs = make_inputs(Path(directory), args.quick)
        for name, path in inputs.items():
            # Rounds interleave the pipelines, so that a slow spell of this shared machine hits
            # them all alike; each ratio is the median of the per-round ratios.
            samples: dict[str, list[float]] = {label: [] for label in PIPELINES}
            outputs = {label: func(str(path)) for label, func in PIPELINES.items()}  # warm-up
            for _ in range(repeat):
                for label, func in PIPELINES.items():
                    started = time.perf_counter()
                    func(str(path))
                    samples[label].append(time.perf_counter() - started)
            baseline = samples["obvious Pillow (baseline)"]
            rows = [
                [
                    label,
                    f"{median(times) * 1000:.0f}",
                    f"{median([b / t for b, t in zip(baseline, times, strict=True)]):.1f}x",
                    f"{peak_rss_mb(label, path):.0f}",
                    f"{psnr(outputs[label], path):.1f}",
                ]
                for label, times in samples.items()
            ]
            print_table(f"{name} → fit {BOX[0]}x{BOX[1]}, JPEG q{QUALITY} (median of {repeat} interleaved rounds)", ["pipeline", "ms/image", "vs obvious", "peak RSS MiB", "PSNR dB"], rows)
        count = run_size(args, 10, 2, 1)
        for name, path in list(inputs.items())[:2]:  # the 12 and 24 MP JPEGs
            rates = {label: two_process_rate(label, path, count) for label in PIPELINES}
            base, vips_rate = rates["obvious Pillow (baseline)"], rates.get("libvips (pyvips)")
            print_table(
                f"two processes in parallel, {name} ({2 * count} images)",
                ["pipeline", "images/s", "vs obvious", "vs libvips"],
                [[label, f"{rate:.1f}", f"{rate / base:.1f}x", f"{rate / vips_rate:.2f}x" if vips_rate else "-"] for label, rate in rates.items()],
            )
        storage_rows(inputs, run_size(args, 11, 3, 1))


# --- end to end through the media storage: local disk vs S3 ----------------------------------

def _storage_env(directory: Path, redis_db: int, endpoint: str, bucket: str) -> dict[str, str]:
    from tests.s3 import ACCESS_KEY, REGION, SECRET_KEY

    return {
        "DATABASE_URL": f"sqlite:///{directory / 'bench.sqlite3'}",
        "DJANGO_MEDIA_ROOT": str(directory / "media"),
        "RQ_REDIS_DB": str(redis_db),
        "BENCH_S3_ENDPOINT": endpoint,
        "BENCH_S3_BUCKET": bucket,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_S3_REGION_NAME": REGION,
    }


def _storages() -> dict[str, object]:
    """Both storages, built once as a process does (building an S3 client costs ~0.4 s)."""
    from django.core.files.storage import storages

    from app.settings.storage import storages_from_env

    local = storages_from_env()["default"]
    os.environ.update(
        MEDIA_STORAGE="s3", AWS_STORAGE_BUCKET_NAME=os.environ["BENCH_S3_BUCKET"],
        AWS_S3_ENDPOINT_URL=os.environ["BENCH_S3_ENDPOINT"], AWS_S3_ADDRESSING_STYLE="path", AWS_S3_USE_SSL="0",
    )
    try:
        s3 = storages_from_env()["default"]
    finally:
        os.environ["MEDIA_STORAGE"] = "local"
    return {"local filesystem": storages.create_storage(local), "S3 (moto server)": storages.create_storage(s3)}


@contextmanager
def _using(storage: object) -> Iterator[None]:
    from django.core.files.storage import default_storage

    default_storage._setup()
    saved, default_storage._wrapped = default_storage._wrapped, storage
    try:
        yield
    finally:
        default_storage._wrapped = saved


def _end_to_end(path: str) -> None:
    """One image: the upload's service (probe, store, record, enqueue), then the job's service."""
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import UploadedFile

    from app.services.images import renditions as images
    from app.services.images import uploads as image_uploads

    owner = get_user_model().objects.get_or_create(username="bench")[0]
    with open(path, "rb") as handle:
        accepted = image_uploads.accept_upload(owner_id=owner.pk, upload=UploadedFile(handle, name="photo.jpg", size=os.path.getsize(path)))
    images.process(accepted.image.original_path, *BOX, QUALITY)


def _clean() -> None:
    from app.models import UploadedImage

    UploadedImage.objects.all().delete()  # and their objects, on commit (outside any transaction: now)


def _storage_process_main() -> None:
    """Child process (argv: root, storage label, image path): peak RSS, whole and above the warmed process."""
    from benchmarks.lib.common import setup_django

    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    with _using(_storages()[sys.argv[2]]):
        _end_to_end(sys.argv[3])  # warm: imports, clients, the first connection
        _clean()
        idle = _status_mib("VmRSS")
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # VmHWM := VmRSS: the peak from here on is what images cost
        for _ in range(2):
            _end_to_end(sys.argv[3])
            _clean()
    print(_status_mib("VmHWM"), _status_mib("VmHWM") - idle)


def _status_mib(field: str) -> float:
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field)) / 1024


def storage_rows(inputs: dict[str, Path], repeat: int) -> None:
    from benchmarks.lib.common import private_redis_db, setup_django
    from tests.s3 import S3Server

    name, path = next(iter(inputs.items()))  # the 12 MP JPEG (3 MP in quick mode)
    server = S3Server()
    server.start()
    try:
        with private_redis_db() as redis_db, tempfile.TemporaryDirectory(prefix="egoejo-bench-storage-") as directory:
            env = _storage_env(Path(directory), redis_db, server.endpoint, server.new_bucket())
            os.environ.update(env)
            setup_django()
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
            storages = _storages()
            samples: dict[str, list[float]] = {label: [] for label in storages}
            cpu: dict[str, list[float]] = {label: [] for label in storages}
            for round_index in range(repeat + 1):  # round 0 warms up both
                for label, storage in storages.items():
                    with _using(storage):
                        started, started_cpu = time.perf_counter(), time.process_time()
                        _end_to_end(str(path))
                        elapsed, elapsed_cpu = time.perf_counter() - started, time.process_time() - started_cpu
                        _clean()
                    if round_index:
                        samples[label].append(elapsed)
                        cpu[label].append(elapsed_cpu)
            baseline = samples["local filesystem"]
            rss = {}
            for label in storages:
                code = "import sys; sys.path.insert(0, sys.argv[1]); import benchmarks.areas.images as b; b._storage_process_main()"
                out = subprocess.run([sys.executable, "-c", code, str(ROOT), label, str(path)], capture_output=True, text=True, check=True, env=os.environ.copy())
                rss[label] = tuple(float(v) for v in out.stdout.strip().splitlines()[-1].split())
            rows = [
                [label, f"{median(times) * 1000:.0f}", f"{(median([t / b for b, t in zip(baseline, times, strict=True)]) - 1) * 100:+.0f} %",
                 f"{median(cpu[label]) * 1000:.0f}", f"{(median([t / b for b, t in zip(cpu['local filesystem'], cpu[label], strict=True)]) - 1) * 100:+.0f} %",
                 f"{rss[label][0]:.0f}", f"{rss[label][1]:.0f}"]
                for label, times in samples.items()
            ]
            print_table(
                f"{name}, end to end per image: upload service + process_image (3 renditions) through the media storage (median of {repeat} interleaved rounds)",
                ["storage", "ms/image", "vs local", "CPU ms/image (app)", "vs local", "peak RSS MiB", "peak above warmed MiB"], rows,
            )
            print("CPU: this process's own time (the app's cost); wall time also waits on the S3 server, which")
            print("here is moto (Python, same 2 cores): tens of ms per request, where MinIO or S3 take a few.")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
