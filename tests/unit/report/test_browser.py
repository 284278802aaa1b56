"""The report opens in headless Chromium without console errors and its figures decode.

Needs Debian's ``chromium`` (``apt-get install -y --no-install-recommends chromium``); the
tests skip with that hint when ``/usr/bin/chromium`` is absent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pharmafl.report import ConsortiumSummary

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists(),
    reason="headless browser test needs /usr/bin/chromium: "
    "apt-get install -y --no-install-recommends chromium",
)
_CONSOLE = re.compile(r":CONSOLE(?:\(\d+\))?:?\d*\] (.*)")


def run_chromium(page: Path, tmp: Path, *args: str) -> tuple[str, list[str]]:
    """Load ``page`` headless; return (stdout, console messages)."""
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
        page.resolve().as_uri(),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    console = [m.group(1) for line in out.stderr.splitlines() if (m := _CONSOLE.search(line))]
    return out.stdout, console


def test_report_opens_without_console_errors(
    rendered_report: tuple[ConsortiumSummary, Path], tmp_path: Path
) -> None:
    summary, page = rendered_report
    dom, console = run_chromium(page, tmp_path, "--dump-dom", "--virtual-time-budget=3000")
    assert console == [], console
    assert dom.count('<img src="data:image/png;base64,') >= 3
    for p in summary.partners:
        assert p.name in dom
    assert "What each partner gave" in dom and "Ledger" in dom


def test_figures_decode_in_the_browser(
    rendered_report: tuple[ConsortiumSummary, Path], tmp_path: Path
) -> None:
    # A test-only copy with the CSP removed and a probe script: it reports through the
    # console, which also proves that console messages are captured at all.
    html = rendered_report[1].read_text(encoding="utf-8")
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
    probe = (
        "<script>window.addEventListener('load',()=>{const s=[...document.images]"
        ".map(i=>[i.complete,i.naturalWidth,i.naturalHeight]);"
        "console.log('PROBE '+JSON.stringify(s));});</script>"
    )
    page = tmp_path / "probe.html"
    page.write_text(html.replace("</body>", probe + "</body>"), encoding="utf-8")
    _, console = run_chromium(page, tmp_path, "--dump-dom", "--virtual-time-budget=3000")
    probes = [m for m in console if m.startswith('"PROBE ')]
    assert len(probes) == 1 and len(console) == 1, console
    images = json.loads(probes[0].split("PROBE ", 1)[1].split('"', 1)[0])
    assert len(images) >= 3
    assert all(done and w >= 300 and h >= 150 for done, w, h in images), images


def test_screenshot_shows_the_page(
    rendered_report: tuple[ConsortiumSummary, Path], tmp_path: Path
) -> None:
    import matplotlib.image

    page = rendered_report[1]
    shot = tmp_path / "shot.png"
    run_chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1200,2400")
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2400, 1200)
    # Not a blank page: many distinct colours, and the figures' blue bars are visible.
    rgb = (pixels[..., :3] * 255).astype(int)
    assert len({tuple(c) for c in rgb[::7, ::7].reshape(-1, 3)}) > 200
    federated_blue = (
        (abs(rgb[..., 0] - 0x00) < 20)
        & (abs(rgb[..., 1] - 0x72) < 20)
        & (abs(rgb[..., 2] - 0xB2) < 20)
    )
    assert federated_blue.sum() > 2000
