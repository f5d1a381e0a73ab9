"""report.html in a real browser: headless Chromium (system package) renders every section and the embedded images.
Skipped where no Chromium is installed; the page's content is tested without a browser in test_segment.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmtumor.cli import app

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")),
                    reason="no Chromium installed")
def test_segment_page_renders_in_chromium(phantom_dir, tiny_weights, tmp_path):
    r = CliRunner().invoke(app, ["segment", str(phantom_dir / "Synth_00000"), "-o", str(tmp_path / "o"),
                                 "--weights", str(tiny_weights), "--device", "cpu", "--fast"])
    assert r.exit_code == 0, r.output
    shot = tmp_path / "page.png"
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "page_screenshot.py"), str(tmp_path / "o" / "report.html"),
                        str(shot), "--height", "1200"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "all 6 sections" in p.stdout and shot.stat().st_size > 20_000
