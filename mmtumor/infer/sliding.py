"""Sliding-window region prediction over a whole (brain-cropped) volume.

Windows are blended with a Gaussian importance map (MONAI's ``sliding_window_inference``), so borders of a window
count less than its centre. Absent modalities travel as ``present=False`` and the model skips them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch

from ..voxels import bbox_of


def brain_bbox(image: np.ndarray, present: Sequence[bool], margin: int = 2) -> tuple[slice, ...]:
    """Bounding box of the non-zero voxels of the present channels (the brain for skull-stripped input)."""
    chans = [i for i, p in enumerate(present) if p]
    return bbox_of(np.any(image[chans] != 0, axis=0), margin)


def autocast_context(device: torch.device, amp: bool):
    """bf16 autocast on GPUs that support it, fp16 on older ones, nothing on CPU."""
    if not amp or device.type != "cuda":
        return torch.autocast(device_type="cpu", enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


@torch.no_grad()
def sliding_window_regions(
    model: torch.nn.Module,
    image: np.ndarray | torch.Tensor,
    present: Sequence[bool],
    patch: Sequence[int],
    overlap: float = 0.5,
    sw_batch: int = 2,
    device: torch.device | str = "cpu",
    amp: bool = True,
    tta: bool = False,
    crop: bool = True,
) -> np.ndarray:
    """Region probabilities [3, D, H, W] (WT, TC, ET) for ``image`` [4, D, H, W] (normalised, absent channels any)."""
    from monai.inferers import sliding_window_inference

    device = torch.device(device)
    img = image if isinstance(image, np.ndarray) else image.cpu().numpy()
    out = np.zeros((3, *img.shape[1:]), dtype=np.float32)
    box = brain_bbox(img, present) if crop else tuple(slice(0, s) for s in img.shape[1:])
    sub = torch.from_numpy(np.ascontiguousarray(img[(slice(None), *box)])).float().unsqueeze(0).to(device)
    pres = torch.tensor([list(map(bool, present))], device=device)
    sub = sub * pres.view(1, 4, *([1] * (sub.ndim - 2))).to(sub.dtype)  # absent content never reaches the model
    was_training = model.training
    model.eval()

    def predictor(x: torch.Tensor) -> torch.Tensor:
        with autocast_context(device, amp):
            logits = model(x, pres.expand(x.shape[0], 4))["logits"]
        return torch.sigmoid(logits.float())

    roi = tuple(int(p) for p in patch)
    flips: list[tuple[int, ...]] = [()]
    if tta:
        flips = [f for k in range(4) for f in itertools.combinations((2, 3, 4), k)]
    acc = None
    for f in flips:
        x = torch.flip(sub, f) if f else sub
        prob = sliding_window_inference(x, roi, sw_batch, predictor, overlap=overlap, mode="gaussian", padding_mode="constant")
        prob = torch.flip(prob, f) if f else prob
        acc = prob if acc is None else acc + prob
    probs = (acc / len(flips))[0].float().cpu().numpy()
    out[(slice(None), *box)] = probs
    model.train(was_training)
    return out
