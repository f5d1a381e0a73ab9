"""The inference package's parts on their own: sliding-window blending, writers, preview orientation."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import torch

from mmtumor.infer.preview import SIDES, _views
from mmtumor.infer.sliding import brain_bbox, sliding_window_regions
from mmtumor.infer.writers import write_segmentation, write_volumes


class PointwiseModel(torch.nn.Module):
    """Region logits from the voxel itself: any correct window blending must reproduce it exactly."""

    def forward(self, x, present):
        self.seen_present = present
        self.seen_max = x.abs().amax(dim=(0, 2, 3, 4))
        return {"logits": (x[:, :3] - 0.5) * 20}


def test_sliding_window_blending_reproduces_a_pointwise_model():
    rng = np.random.default_rng(0)
    img = np.zeros((4, 40, 36, 30), np.float32)
    img[:, 5:35, 4:32, 3:27] = rng.random((4, 30, 28, 24))
    model = PointwiseModel()
    probs = sliding_window_regions(model, img, [True, True, True, False], patch=(16, 16, 16), overlap=0.5, amp=False)
    expect = 1 / (1 + np.exp(-(img[:3] - 0.5) * 20))
    box = (slice(None), *brain_bbox(img, [True, True, True, False]))
    assert np.allclose(probs[box], expect[box], atol=1e-5)
    outside = np.ones(img.shape[1:], bool)
    outside[box[1:]] = False
    assert not probs[:, outside].any()  # nothing predicted outside the brain's box
    assert model.seen_max[3].item() == 0.0  # the absent channel's content never reached the model


def test_segmentation_writer_converts_the_label_scheme(tmp_path):
    lab = np.zeros((6, 5, 4), np.uint8)
    lab[1, 1, 1], lab[2, 2, 2], lab[3, 3, 3] = 1, 2, 4
    aff = np.diag([0.9, 1.1, 3.0, 1.0])
    p = write_segmentation(tmp_path, lab, aff, "brats2023")
    img = nib.load(str(p))
    assert set(np.unique(np.asarray(img.dataobj))) == {0, 1, 2, 3} and np.allclose(img.affine, aff)
    assert np.asarray(img.dataobj)[3, 3, 3] == 3


def test_volume_writers_agree(tmp_path):
    vols = {"NCR": 1.5, "ED": 10.25, "ET": 2.0, "TC": 3.5, "WT": 13.75}
    p = write_volumes(tmp_path, vols)
    assert json.loads(p.read_text()) == vols
    rows = (tmp_path / "volumes.csv").read_text().splitlines()
    assert rows[0] == "region,volume_ml" and rows[2] == "ED,10.250"


def test_preview_views_are_radiological():
    vol = np.zeros((20, 22, 24))
    vol[17, 11, 12] = 1  # RAS canonical: high x is the patient's right
    axial, coronal, sagittal = _views(vol, (17, 11, 12))
    for view in (axial, coronal):
        col = np.argwhere(view)[0][1]
        assert col < view.shape[1] // 2  # the patient's right on the image's left
    assert SIDES[0] == ("R", "L") and SIDES[2] == ("P", "A")
    vol[:] = 0
    vol[10, 20, 12] = 1  # high y: anterior, on the right of the sagittal view
    assert np.argwhere(_views(vol, (10, 20, 12))[2])[0][1] > sagittal.shape[1] // 2
