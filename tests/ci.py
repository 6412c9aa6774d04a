"""Whether this run is CI's: one reading of the `CI` variable for every test and hook."""

from __future__ import annotations

import os

FALSE = ("", "0", "false", "no", "off")


def under_ci() -> bool:
    """`CI` set to anything truthy (`true`, `1`, `yes`…): nothing may skip (tests/conftest.py's hook)."""
    return os.environ.get("CI", "").strip().lower() not in FALSE
