"""The synthetic head around a skull-stripped brain (mmtumor.synth.head), used to test the skull-on path on real anatomy."""

import numpy as np

from mmtumor.modalities import Modality as M
from mmtumor.preprocess.spatial import _looks_skull_stripped
from mmtumor.synth.head import TISSUE, head_tissues, wrap_in_head


def _stripped_brain(shape=(80, 96, 70), sp=2.0):
    """An ellipsoidal 'brain' (about 1.3 L) with a bright core, on an LPS-like grid (x runs against the array)."""
    aff = np.diag([-sp, -sp, sp, 1.0])
    aff[:3, 3] = [80.0, 96.0, -60.0]
    idx = np.indices(shape, dtype=float)
    c = (np.array(shape) - 1) / 2
    r = np.sqrt(sum(((idx[i] - c[i]) / (a / sp)) ** 2 for i, a in enumerate((65.0, 80.0, 60.0))))
    brain = r <= 1
    t1c = np.where(brain, 100.0 + 50.0 * (r < 0.5), 0.0).astype(np.float32)
    flair = np.where(brain, 80.0 + 20.0 * (r < 0.5), 0.0).astype(np.float32)
    return {M.T1C: t1c, M.FLAIR: flair}, aff, brain


def test_head_keeps_world_coordinates_and_the_brain():
    imgs, aff, brain = _stripped_brain()
    out, big_aff, in_brain = wrap_in_head(imgs, aff, seed=1)
    # the input grid's voxel (0, 0, 0) is at the same world point in the padded grid
    tissue, big_aff2, inner = head_tissues(brain, aff, seed=1)
    assert np.allclose(big_aff, big_aff2)
    corner = np.array([s.start for s in inner] + [1.0])
    assert np.allclose(big_aff @ corner, aff @ np.array([0, 0, 0, 1.0]))
    assert in_brain[inner].sum() == brain.sum() and in_brain.sum() == brain.sum()
    for m in imgs:
        assert out[m].shape == tissue.shape
        assert np.array_equal(out[m][inner][brain], imgs[m][brain])  # the real brain's voxels are untouched
    # room below the brain for a neck: at least 70 mm of padding inferiorly (world z decreasing)
    assert big_aff[2, 3] <= aff[2, 3] - 70


def test_head_layers_are_in_anatomical_order():
    _, aff, brain = _stripped_brain()
    tissue, _, inner = head_tissues(brain, aff, seed=2)
    # walk outwards from the brain's centre along +x of the array (a lateral ray through the head)
    c = [s.start + n // 2 for s, n in zip(inner, brain.shape)]
    ray = tissue[c[0]:, c[1], c[2]]
    seen = [int(v) for i, v in enumerate(ray) if i == 0 or v != ray[i - 1]]
    assert seen[0] == -1 and seen[-1] == 8  # brain ... air
    names = [seen.index(k) for k in (0, 2, 3, 5)]  # csf, bone, diploe, fat
    assert names == sorted(names), seen
    assert (tissue == 7).sum() > 0 and (tissue == 4).sum() > (tissue == 2).sum() * 0.5  # orbits; neck/face muscle


def test_wrapped_head_reads_as_skull_on():
    imgs, aff, brain = _stripped_brain()
    assert _looks_skull_stripped(imgs[M.T1C], aff)
    out, big_aff, in_brain = wrap_in_head(imgs, aff, seed=3)
    assert not _looks_skull_stripped(out[M.T1C], big_aff)  # noisy air, a head larger than a brain
    # scalp fat is brighter than the brain's white-matter level on T1c, cortical bone is dark
    tissue, _, _ = head_tissues(brain, aff, seed=3)
    wm = np.percentile(imgs[M.T1C][brain], 80)
    assert np.median(out[M.T1C][tissue == 5]) > 1.1 * wm
    assert np.median(out[M.T1C][tissue == 2]) < 0.2 * wm
    assert TISSUE[M.T1C][5] > 1.0 and TISSUE[M.FLAIR][0] < 0.5
