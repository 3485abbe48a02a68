"""The report page in a real browser: headless Chromium renders index.html to a non-blank screenshot, the
leaderboard table is in the DOM, every <img> (the learning curves among them) is a data URI that Pillow
decodes, and no markup from the data runs as HTML (a <script> in a source sentence and in a config value stays
text)."""

from __future__ import annotations

import base64
import importlib.util
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from harness.report import render_runs

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason="/usr/bin/chromium not installed (apt-get install chromium, or `make system-deps`)",
)


def _fake_runs(tmp: Path) -> list[Path]:
    """The hand-made run directories of tests/unit/test_report.py (2 configurations x 2 seeds)."""
    path = Path(__file__).resolve().parent.parent / "unit" / "test_report.py"
    spec = importlib.util.spec_from_file_location("report_test_helpers", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.fake_runs(tmp)


def _chromium(args: list[str], profile: Path, timeout: int = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs: list[str] = []
        self.alts: list[str] = []
        self.tables: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a.get("src") or "")
            self.alts.append(a.get("alt") or "")
        elif tag == "table" and a.get("id"):
            self.tables.append(a["id"])
        elif tag == "script":
            self.scripts += 1


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report_html")
    return render_runs(_fake_runs(tmp), tmp / "report", title="browser test")


@pytest.mark.slow
def test_page_renders_in_chromium(page, tmp_path):
    shot = tmp_path / "shot.png"
    r = _chromium([f"--screenshot={shot}", "--window-size=1280,2000", page.resolve().as_uri()], tmp_path / "p1")
    assert shot.is_file(), f"no screenshot (exit {r.returncode}): {r.stderr[-500:]}"
    im = Image.open(shot).convert("L")
    assert im.size == (1280, 2000)
    lo, hi = im.getextrema()
    assert hi - lo > 100, "screenshot is blank"
    assert ImageStat.Stat(im).stddev[0] > 5, "screenshot is (almost) uniform"

    dom = _chromium(["--dump-dom", "--virtual-time-budget=3000", page.resolve().as_uri()], tmp_path / "p2").stdout
    parser = _Images()
    parser.feed(dom)
    assert "leaderboard" in parser.tables and "significance" in parser.tables
    assert parser.scripts == 0, "a <script> element reached the DOM"
    assert "<script>alert(1)</script>" in _text_of(dom), "the escaped text should be shown as text"
    assert len(parser.srcs) >= 6  # learning curves, length plot, AER, BLEU vs cost, heatmaps, animation
    assert {"learning curve val_ppl", "learning curve val_bleu"} <= set(parser.alts)
    kinds = set()
    for src in parser.srcs:
        m = re.fullmatch(r"data:(image/(?:png|gif));base64,([A-Za-z0-9+/=]+)", src)
        assert m, f"image is not a data URI: {src[:60]}"
        im = Image.open(io.BytesIO(base64.b64decode(m.group(2), validate=True)))
        im.load()
        assert im.size[0] > 50 and im.size[1] > 50
        kinds.add(im.format)
    assert kinds == {"PNG", "GIF"}


def _text_of(dom: str) -> str:
    class Text(HTMLParser):
        def __init__(self):
            super().__init__()
            self.parts: list[str] = []

        def handle_data(self, data):
            self.parts.append(data)

    t = Text()
    t.feed(dom)
    return " ".join(t.parts)


def test_chromium_is_runnable():
    assert shutil.which(str(CHROMIUM)) is not None
