"""The run's logs: metrics.jsonl/.csv hold every epoch with its loss terms and val score; curves.png is a PNG."""

import csv
import json

from mmtumor.train.logs import NullProgress, plot_curves, progress_bar, write_logs

HISTORY = [
    {"epoch": 1, "lr": 1e-3, "seconds": 2.0, "loss": {"total": 1.5, "avg": 0.7}},
    {"epoch": 2, "lr": 9e-4, "seconds": 2.1, "loss": {"total": 1.2, "avg": 0.6, "adaptive": 0.5},
     "val": {"score": 0.42, "all": [0.6, 0.4, 0.3]}},
]


def test_write_logs_keeps_every_epoch_and_every_loss_term(tmp_path):
    write_logs(tmp_path, HISTORY)
    assert [json.loads(line)["epoch"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    rows = list(csv.reader((tmp_path / "metrics.csv").open()))
    assert rows[0] == ["epoch", "lr", "seconds", "adaptive", "avg", "total", "val_score"]
    assert rows[1][3] == "" and rows[1][-1] == ""  # a term or a validation that epoch did not have stays empty
    assert rows[2][3] == "0.5" and rows[2][-1] == "0.42"
    assert not list(tmp_path.glob(".tmp-*"))  # nothing half-written left (io.atomic temp names)


def test_plot_curves_writes_a_png_and_nothing_without_history(tmp_path):
    plot_curves(tmp_path, [])
    assert not (tmp_path / "curves.png").exists()
    plot_curves(tmp_path, HISTORY)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_progress_bar_is_a_no_op_when_hidden():
    with progress_bar(False) as bar:
        assert isinstance(bar, NullProgress)
        assert bar.add_task("x", total=3) is None and bar.update(None, advance=1) is None
