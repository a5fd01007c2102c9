"""What a person sees: the leaderboard rendered by headless Chromium (Debian's package).

``.ci/run`` installs ``chromium``; where it cannot be installed the test skips and says so.
"""

from __future__ import annotations

import shutil
import subprocess

import cv2
import duckdb
import numpy as np
import pytest

from tests.test_leaderboard import db  # noqa: F401  (fixture: a tiny run with its site)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)"
)


def screenshot(page, out, width: int = 1200, height: int = 1600) -> np.ndarray:
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--hide-scrollbars", "--force-device-scale-factor=1",
        f"--user-data-dir={out.parent / 'chromium-profile'}",
        f"--window-size={width},{height}", f"--screenshot={out}", page.as_uri(),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    image = cv2.imread(str(out))
    assert image is not None, f"no screenshot written for {page}"
    return image


def best_match(shot: np.ndarray, png: bytes) -> float:
    figure = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    return float(cv2.matchTemplate(shot, figure, cv2.TM_CCOEFF_NORMED).max())


def test_screenshot_shows_tables_and_figures(db, tmp_path):  # noqa: F811
    site = db.parent / "site"
    index = screenshot(site / "index.html", tmp_path / "index.png", height=900)
    # Text and table rules on a white page: a fair share of dark pixels, not a blank page.
    dark = (index.min(axis=2) < 128).mean()
    assert 0.005 < dark < 0.5, dark

    page = next(site.glob("scenario-*-lipstick.html"))
    shot = screenshot(page, tmp_path / "lipstick.png", height=2400)
    cv2.imwrite(str(tmp_path / "lipstick.png"), shot)
    with duckdb.connect(str(db), read_only=True) as con:
        figs = dict(
            con.execute("SELECT kind, png FROM figures WHERE scenario = 'lipstick'").fetchall()
        )
    # Both figures appear on the page pixel for pixel (template match of the stored PNG).
    assert best_match(shot, figs["prototype"]) > 0.95
    assert best_match(shot, figs["patches"]) > 0.95
    # The prototype's blue→red heatmap is visible: strongly saturated pixels are present.
    hsv = cv2.cvtColor(shot, cv2.COLOR_BGR2HSV)
    assert (hsv[..., 1] > 200).sum() > 2000
