from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
# On this closed network Chromium's own background connections fail and slow everything down.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="session")
def browser_context_factory() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        message = "Debian's chromium is not installed (scripts/test installs it: apt-get install chromium)"
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        contexts = []

        def new_context(**options: object):  # type: ignore[no-untyped-def]
            context = playwright.chromium.launch_persistent_context(
                tempfile.mkdtemp(prefix="egoejo-chromium-"),
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                **options,
            )
            contexts.append(context)
            return context

        yield new_context
        for context in contexts:
            context.close()
