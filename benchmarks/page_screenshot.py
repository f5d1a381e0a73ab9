"""Open a report.html in a real headless browser (Chromium from the system packages), check that it renders the
sections the page must have, and keep a screenshot (docs/img/).

    python benchmarks/page_screenshot.py OUTPUT_FOLDER/report.html docs/img/report-page.png [--height 2600]

Exits non-zero when Chromium is missing, fails, or the rendered DOM lacks a required section. The page is
self-contained: Chromium runs with the network off (no proxy, no remote fetch) and must still show every image.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REQUIRED = {"segment": ("Inputs", "Tumour volumes", "Lesions and RANO measurements", "Preview", "Warnings",
                        "Provenance"),
            "compare": ("Time points", "Imaging measurement category", "Volumes and bidimensional burden", "Lesions",
                        "Both time points")}


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    sys.exit("no Chromium found (apt-get install chromium)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("page", type=Path)
    ap.add_argument("png", type=Path)
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--height", type=int, default=2600)
    args = ap.parse_args()
    exe = chromium()
    url = args.page.resolve().as_uri()
    common = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-proxy-server", "--proxy-server=127.0.0.1:9",
              "--hide-scrollbars"]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    kind = "compare" if "follow-up comparison" in dom else "segment"
    missing = [s for s in REQUIRED[kind] if f"<h2>{s}" not in dom]
    if missing:
        sys.exit(f"{args.page}: the rendered page lacks {missing}")
    if "data:image/png;base64," not in dom:
        sys.exit(f"{args.page}: no embedded image in the rendered page")
    args.png.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([*common, f"--window-size={args.width},{args.height}", f"--screenshot={args.png.resolve()}", url],
                   capture_output=True, timeout=120, check=True)
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"{args.page}: {kind} page rendered by {version}: all {len(REQUIRED[kind])} sections; screenshot {args.png}")


if __name__ == "__main__":
    main()
