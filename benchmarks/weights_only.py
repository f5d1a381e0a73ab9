"""Strip training checkpoints to their weights (no optimizer, scaler or RNG state), in place, so that a GPU lease's
runs come back in one small archive; ``--init-from`` and ``mmtumor weights export`` accept what is left.

    python benchmarks/weights_only.py RUNS_DIR      # every RUNS_DIR/*/*.pt
"""

from __future__ import annotations

import sys
from pathlib import Path

DROPPED = ("optimizer", "full_model", "scaler", "rng")


def main(runs: Path) -> None:
    import torch

    for pt in sorted(runs.glob("*/*.pt")):
        ck = torch.load(pt, map_location="cpu", weights_only=False)
        for k in DROPPED:
            ck.pop(k, None)
        torch.save(ck, pt)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
