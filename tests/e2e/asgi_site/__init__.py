"""The project's site plus a few views that enqueue in each way a view can answer (tests/e2e/test_asgi.py)."""
