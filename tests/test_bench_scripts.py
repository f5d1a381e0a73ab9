"""Bookkeeping of the benchmark scripts: sim2real rows land in the attempts table, not in a table of notes below it."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _sim2real():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "sim2real.py"
    spec = importlib.util.spec_from_file_location("sim2real_script", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_add_row_goes_into_the_first_table():
    doc = "# t\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nnotes\n\n| x | y |\n|---|---|\n| 9 | 9 |\n"
    out = _sim2real().add_row(doc, "| 3 | 4 |")
    lines = out.splitlines()
    assert lines[lines.index("| 1 | 2 |") + 1] == "| 3 | 4 |"
    assert out.count("| 3 | 4 |") == 1 and lines[-1] == "| 9 | 9 |"
    assert _sim2real().add_row("no table\n", "| 3 | 4 |\n").endswith("| 3 | 4 |\n")
