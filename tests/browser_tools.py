"""Headless Chromium for the browser tests (``test_browser.py``, ``test_book.py``).

Debian's ``chromium`` is driven by Playwright through its executable path; Playwright's own
browser downloads are never used. A test skips, saying why, where Chromium or a Python
module it needs is missing, unless ``BSR_REQUIRE_BROWSER=1`` (set by ``.ci/run``) turns that
into a failure. ``BSR_CHROMIUM`` names another browser binary (``BSR_CHROMIUM=/nonexistent``
shows the skip).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

# Without the background-networking switches Chromium keeps calling out (updates, sync,
# field trials), which on a closed network only costs time and log noise.
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI containers run as root, where the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def unavailable(reason: str):
    """Skip, or fail where CI demands the browser test (``BSR_REQUIRE_BROWSER=1``)."""
    if os.environ.get("BSR_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (BSR_REQUIRE_BROWSER=1 requires the browser test)")
    pytest.skip(reason)


def chromium_path(*modules: str) -> str:
    """The Chromium binary to drive, after checking that Playwright and ``modules`` are there."""
    path = os.environ.get("BSR_CHROMIUM") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
    )
    if not path or not os.access(path, os.X_OK):
        unavailable(f"no Chromium at {path or '/usr/bin/chromium'} (apt-get install chromium)")
    for module in ("playwright", *modules):
        if importlib.util.find_spec(module) is None:
            unavailable(f"{module} is not installed (pip install -e '.[dev]')")
    return path
