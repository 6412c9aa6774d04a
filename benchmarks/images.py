"""process_image: the project's Pillow pipeline against the obvious Pillow code, same inputs, same run.

    scripts/bench images [--quick]

Inputs are generated (photo-like: smooth gradients, texture, noise). Time is the median per
image in one process; peak RSS is measured in a fresh process per (pipeline, input). PSNR
compares the fitted image with a full-resolution LANCZOS reference. pyvips (libvips) is
measured too when it is installed (optional, not a runtime dependency).
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
from pathlib import Path

from PIL import Image, ImageChops, ImageFilter, ImageOps, ImageStat

from benchmarks.common import ROOT, median, parse_args, print_table

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
    from app.services import image_pipeline

    return image_pipeline.render(Path(path).read_bytes(), *BOX, QUALITY, 50_000_000, renditions=("fitted",))[0].data


def project_all(path: str) -> bytes:
    from app.services import image_pipeline

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
        "import sys; sys.path.insert(0, sys.argv[1]); import benchmarks.images as b;"
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
    repeat = 2 if args.quick else 11
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
        count = 2 if args.quick else 10
        for name, path in list(inputs.items())[:2]:  # the 12 and 24 MP JPEGs
            rates = {label: two_process_rate(label, path, count) for label in PIPELINES}
            base, vips_rate = rates["obvious Pillow (baseline)"], rates.get("libvips (pyvips)")
            print_table(
                f"two processes in parallel, {name} ({2 * count} images)",
                ["pipeline", "images/s", "vs obvious", "vs libvips"],
                [[label, f"{rate:.1f}", f"{rate / base:.1f}x", f"{rate / vips_rate:.2f}x" if vips_rate else "-"] for label, rate in rates.items()],
            )

if __name__ == "__main__":
    main()
