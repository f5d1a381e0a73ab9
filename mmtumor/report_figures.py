"""Figures of a benchmark report (PNG bytes): the Dice heatmap and Dice against the number of modalities."""

from __future__ import annotations

import io

import numpy as np


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def heatmap_png(table: dict) -> bytes:
    """Subset x region Dice heatmap, one panel per method (Agg backend, no pyplot global state)."""
    from matplotlib.figure import Figure

    methods, regions, rows = table["methods"], table["regions"], table["rows"]
    fig = Figure(figsize=(1.2 + 0.9 * len(regions) * len(methods) + 1.2, 0.35 * len(rows) + 1.6))
    axes = fig.subplots(1, len(methods), squeeze=False)[0]
    scale = 100.0 if table["metric"] in ("dice", "sens", "spec") else 1.0
    vmax = 100.0 if scale == 100.0 else max([v for r in rows for reg in regions for v in r["values"][reg].values()
                                               if v is not None] + [1.0])
    im = None
    for ax, method in zip(axes, methods, strict=True):
        grid = np.array([[np.nan if r["values"][reg][method] is None else r["values"][reg][method] * scale
                          for reg in regions] for r in rows], dtype=float)
        im = ax.imshow(grid, cmap="viridis" if scale == 100.0 else "viridis_r", vmin=0, vmax=vmax, aspect="auto")
        ax.set_title(method, fontsize=9)
        ax.set_xticks(range(len(regions)), regions)
        ax.set_yticks(range(len(rows)), [r["subset_name"] for r in rows] if ax is axes[0] else [""] * len(rows), fontsize=7)
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=6,
                            color="white" if grid[i, j] < 0.6 * vmax else "black")
    if im is not None:
        fig.colorbar(im, ax=list(axes), shrink=0.8, label=f"{table['metric'].upper()} ({table['unit']})")
    return _png(fig)


def dice_vs_modalities_png(table: dict) -> bytes:
    """Mean Dice against the number of present modalities (1-4), one panel per region, one line per method;
    dots are the individual subsets."""
    from matplotlib.figure import Figure

    regions, methods, rows = table["regions"], table["methods"], table["rows"]
    fig = Figure(figsize=(3.2 * len(regions), 3.2))
    axes = fig.subplots(1, len(regions), squeeze=False)[0]
    for ax, region in zip(axes, regions, strict=True):
        for k, method in enumerate(methods):
            pts = [(r["n_present"], r["values"][region][method] * 100) for r in rows if r["values"][region][method] is not None]
            if not pts:
                continue
            xs = sorted({p[0] for p in pts})
            means = [np.mean([v for n, v in pts if n == x]) for x in xs]
            jitter = (k - (len(methods) - 1) / 2) * 0.06
            line = ax.plot(xs, means, marker="o", label=method)[0]
            ax.scatter([p[0] + jitter for p in pts], [p[1] for p in pts], s=8, alpha=0.4, color=line.get_color())
        ax.set_title(region)
        ax.set_xlabel("present modalities")
        ax.set_xticks([1, 2, 3, 4])
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{table['metric'].upper()} (%)")
    axes[-1].legend(fontsize=7, loc="lower right")
    return _png(fig)
