"""What a training run leaves for its user besides checkpoints: metrics.jsonl/.csv, TensorBoard scalars,
curves.png and the terminal progress bar. Kept out of the loop so that the loop reads as training only."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from ..io.atomic import atomic_target, write_text_atomic


def write_logs(run_dir: Path, history: list[dict]) -> None:
    """Every epoch so far as ``metrics.jsonl`` and ``metrics.csv`` (rewritten atomically), the last one to
    TensorBoard when it is installed."""
    run_dir = Path(run_dir)
    write_text_atomic(run_dir / "metrics.jsonl", "".join(json.dumps(rec) + "\n" for rec in history))
    keys = sorted({k for r in history for k in r["loss"]})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["epoch", "lr", "seconds", *keys, "val_score"])
    for r in history:
        w.writerow([r["epoch"], r["lr"], r["seconds"], *[r["loss"].get(k, "") for k in keys],
                    r.get("val", {}).get("score", "")])
    write_text_atomic(run_dir / "metrics.csv", buf.getvalue())
    if not history:
        return
    try:
        from torch.utils.tensorboard import SummaryWriter  # optional
    except Exception:
        return
    with SummaryWriter(str(run_dir / "tb")) as tb:
        r = history[-1]
        for k, v in r["loss"].items():
            tb.add_scalar(f"loss/{k}", v, r["epoch"])
        if "val" in r:
            tb.add_scalar("val/score", r["val"]["score"], r["epoch"])


def plot_curves(run_dir: Path, history: list[dict]) -> None:
    """``curves.png``: the loss terms per epoch and the validation Dice (all modalities) with the score."""
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ep = [r["epoch"] for r in history]
    for k in sorted({k for r in history for k in r["loss"]}):
        axes[0].plot(ep, [r["loss"].get(k, math.nan) for r in history], label=k)
    axes[0].set_xlabel("epoch")
    axes[0].set_title("training loss")
    axes[0].legend(fontsize=7)
    vals = [(r["epoch"], r["val"]) for r in history if "val" in r]
    if vals:
        # all modalities, or the first subset of a model trained on --subsets (validated on those only)
        shown = "all" if "all" in vals[0][1] else next(k for k in vals[0][1] if k != "score")
        for i, region in enumerate(("WT", "TC", "ET")):
            axes[1].plot([e for e, _ in vals], [v[shown][i] for _, v in vals], marker="o", label=f"{region} ({shown})")
        axes[1].plot([e for e, _ in vals], [v["score"] for _, v in vals], "k--", label="score")
        axes[1].legend(fontsize=7)
    axes[1].set_title("validation Dice")
    axes[1].set_xlabel("epoch")
    fig.tight_layout()
    try:
        with atomic_target(Path(run_dir) / "curves.png", ".png") as tmp:
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)


class NullProgress:
    """Stands in for a rich progress bar where none is shown (other ranks, ``-q``, output not a terminal)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *a, **k):
        return None

    def update(self, *a, **k):
        return None


def progress_bar(show: bool):
    """The epoch/step bar on an interactive terminal, else a no-op with the same interface."""
    if not show:
        return NullProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), transient=False)
