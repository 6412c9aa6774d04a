"""What one image upload costs the web process in memory, for legitimate and hostile files of every format.

    scripts/bench upload_memory [--quick]

Each file is uploaded in a fresh process through Django's whole WSGI stack (middleware, session,
CSRF, the multipart parser, the upload view and its service, the SQLite database, the outbox),
its body streamed from a file as a server streams it from its socket. The process first uploads
one small image of each format (imports, connections, caches), then resets its peak RSS
(/proc/self/clear_refs) and uploads the file: the figure is the peak resident memory above that
warmed state (VmHWM - VmRSS), which counts what C libraries allocate too. The bodies are written
by this parent process, so that building them costs the measured process nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.lib.common import ROOT, parse_args, print_table

BOUNDARY = "bench-boundary-7MA4YWxkTrZu0gW"


def cases(quick: bool) -> dict[str, Callable[[], bytes]]:
    sys.path.insert(0, str(ROOT))
    from tests import hostile_images as hostile

    big = (1600, 1200) if quick else (4000, 3000)
    return {
        "jpeg 12 MP photo-like noise (accepted)": lambda: hostile.noisy("JPEG", big),
        "png 7000x7000 RGBA (bomb under the pixel limit)": hostile.png_bomb_within_the_pixel_limit,
        "png declaring 100000x100000": lambda: hostile.png_declaring(100_000, 100_000),
        "png 48 zTXt chunks of 1 MiB inflated": lambda: hostile.png_with_ztxt(48),
        "png iCCP of 8 MiB inflated": lambda: hostile.png_with_iccp(8 * 1024 * 1024),
        "png eXIf of 6 MiB": lambda: hostile.png_with_exif(6 * 1024 * 1024),
        "png truncated": lambda: hostile.truncated(hostile.noisy("PNG", big)),
        "jpeg declaring 65500x65500": lambda: hostile.jpeg_declaring(65500, 65500),
        "jpeg 300 APP1 segments of 64 KiB (EXIF bomb)": lambda: hostile.jpeg_with_app_segments(300),
        "jpeg truncated": lambda: hostile.truncated(hostile.noisy("JPEG", big)),
        "gif declaring 65535x65535": lambda: hostile.gif_declaring(65535, 65535),
        "gif 5000 frames": lambda: hostile.gif_with_frames(5000),
        "gif truncated": lambda: hostile.truncated(hostile.noisy("GIF", big)),
        "webp declaring 16384x16384": lambda: hostile.webp_declaring(16384, 16384),
        "webp EXIF of 6 MiB": lambda: hostile.webp_with_exif(6 * 1024 * 1024),
        "webp truncated": lambda: hostile.truncated(hostile.noisy("WEBP", big)),
        "mpo (multi-picture jpeg)": lambda: hostile.mpo((640, 480)),
    }


def multipart(data: bytes, name: str = "upload.png") -> bytes:
    head = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def _status_mib(field: str) -> float:
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field)) / 1024


def _child() -> None:
    """argv: root, the warm-up bodies' directory, the measured body's path. Prints one JSON line."""
    from benchmarks.lib.common import setup_django

    setup_django()
    import gc

    from django.contrib.auth import get_user_model
    from django.core.handlers.wsgi import WSGIHandler
    from django.middleware.csrf import _get_new_csrf_string
    from django.test import Client

    from app.models import UploadedImage

    user = get_user_model().objects.get_or_create(username="bench-uploader")[0]
    login = Client()
    login.force_login(user)
    token = _get_new_csrf_string()
    cookie = f"sessionid={login.cookies['sessionid'].value}; csrftoken={token}"
    handler = WSGIHandler()

    def post(path: Path) -> tuple[str, bytes]:
        statuses: list[str] = []
        with open(path, "rb") as body:
            environ = {
                "REQUEST_METHOD": "POST", "PATH_INFO": "/api/images/", "SCRIPT_NAME": "", "QUERY_STRING": "",
                "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1",
                "CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY}", "CONTENT_LENGTH": str(path.stat().st_size),
                "HTTP_COOKIE": cookie, "HTTP_X_CSRFTOKEN": token, "HTTP_ACCEPT_LANGUAGE": "en",
                "wsgi.input": body, "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
                "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False, "REMOTE_ADDR": "127.0.0.1",
            }
            answer = b"".join(handler(environ, lambda status, headers, exc_info=None: statuses.append(status)))
        return statuses[0], answer

    for warm in sorted(Path(sys.argv[2]).glob("*.body")):
        status, answer = post(warm)
        assert status.startswith("202"), (warm, status, answer)
    UploadedImage.objects.all().delete()
    gc.collect()
    idle = _status_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # VmHWM := VmRSS: the peak from here on is what this upload costs
    status, answer = post(Path(sys.argv[3]))
    peak = _status_mib("VmHWM")
    error = json.loads(answer).get("error", "") if answer.startswith(b"{") else answer[:80].decode(errors="replace")
    print(json.dumps({"status": status.split()[0], "peak_above_warm_mib": round(peak - idle, 1), "peak_mib": round(peak, 1), "error": error}))


def main() -> None:
    args = parse_args(__doc__ or "")
    from benchmarks.lib.common import private_redis_db, setup_django

    sys.path.insert(0, str(ROOT))
    from tests import hostile_images as hostile

    with private_redis_db() as redis_db, tempfile.TemporaryDirectory(prefix="egoejo-bench-upload-memory-") as directory:
        base = Path(directory)
        os.environ.update(
            DATABASE_URL=f"sqlite:///{base / 'bench.sqlite3'}", DJANGO_MEDIA_ROOT=str(base / "media"),
            RQ_REDIS_DB=str(redis_db), THROTTLE_UPLOADS_PER_USER="100000/hour", DJANGO_ALLOWED_HOSTS="127.0.0.1",
            DJANGO_DEBUG="0", DJANGO_SECURE_COOKIES="0",
        )
        setup_django()
        from django.conf import settings
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        warm = base / "warm"
        warm.mkdir()
        for name, data in {"jpeg": hostile.jpeg(), "png": hostile.png(), "gif": hostile.gif(), "webp": hostile.webp()}.items():
            (warm / f"{name}.body").write_bytes(multipart(data, f"warm.{name}"))
        rows = []
        chosen = list(cases(args.quick).items())
        for label, build in chosen[:3] if args.smoke else chosen:  # --smoke: one accepted file, two refused
            data = build()
            body = base / "measured.body"
            body.write_bytes(multipart(data))
            code = "import sys; sys.path.insert(0, sys.argv[1]); import benchmarks.areas.upload_memory as b; b._child()"
            out = subprocess.run([sys.executable, "-c", code, str(ROOT), str(warm), str(body)],
                                 capture_output=True, text=True, env=os.environ.copy(), check=False)
            if out.returncode != 0:
                rows.append([label, f"{len(data) / 1024:.0f}", "crash", "-", out.stderr.strip().splitlines()[-1][:60]])
                continue
            result = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append([label, f"{len(data) / 1024:.0f}", result["status"], f"{result['peak_above_warm_mib']:.1f}", result["error"][:60]])
        print_table(
            "One upload through the web's WSGI stack, fresh process each: peak RSS above the warmed process",
            ["file", "KiB", "status", "peak above warm MiB", "answer"], rows,
        )
        print(f"limits: IMAGE_UPLOAD_MAX_BYTES={settings.IMAGE_UPLOAD_MAX_BYTES}, FILE_UPLOAD_MAX_MEMORY_SIZE="
              f"{settings.FILE_UPLOAD_MAX_MEMORY_SIZE}, IMAGE_MAX_PIXELS={settings.IMAGE_MAX_PIXELS}")


if __name__ == "__main__":
    main()
