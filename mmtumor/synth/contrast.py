"""MR contrasts for phantoms: per-tissue intensities per modality, tumour texture and T1c confounders.

Intensities are relative to normal white matter (WM = 1 in every modality) and drawn per case within
ranges that keep the relations radiologists rely on: enhancement mainly on T1c; edema bright on T2
and FLAIR; CSF bright on T2, dark on FLAIR and T1; necrosis dark on T1/T1c and bright on T2. Vessels,
choroid plexus and dura also enhance on T1c (vessels are flow voids on T2), so T1c alone is not a
threshold for enhancing tumour.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..modalities import MODALITIES, Modality
from .fields import coarse_shape, smooth_noise, upsample
from .tumour import ED, ET, NCR

TISSUES = ("wm", "gm", "deep", "csf", "ed", "ncr", "et", "vessel", "plexus", "dura")

#: (mean, half-range) of each tissue's intensity relative to white matter, per modality.
BASE: dict[Modality, dict[str, tuple[float, float]]] = {
    Modality.T1: dict(wm=(1.0, 0.0), gm=(0.82, 0.06), deep=(0.9, 0.04), csf=(0.3, 0.08), ed=(0.72, 0.08), ncr=(0.58, 0.12),
                      et=(0.82, 0.1), vessel=(0.8, 0.15), plexus=(0.75, 0.1), dura=(0.65, 0.15)),
    Modality.T1C: dict(wm=(1.0, 0.0), gm=(0.84, 0.06), deep=(0.92, 0.04), csf=(0.3, 0.08), ed=(0.72, 0.08), ncr=(0.6, 0.12),
                       et=(1.6, 0.3), vessel=(1.8, 0.4), plexus=(1.5, 0.3), dura=(1.4, 0.3)),
    Modality.T2: dict(wm=(1.0, 0.0), gm=(1.3, 0.1), deep=(0.85, 0.15), csf=(3.6, 0.6), ed=(2.2, 0.4), ncr=(2.6, 0.5),
                      et=(1.7, 0.25), vessel=(0.35, 0.15), plexus=(1.4, 0.2), dura=(0.9, 0.2)),
    Modality.FLAIR: dict(wm=(1.0, 0.0), gm=(1.2, 0.08), deep=(1.0, 0.08), csf=(0.22, 0.1), ed=(1.75, 0.3), ncr=(1.6, 0.4),
                         et=(1.85, 0.3), vessel=(0.6, 0.2), plexus=(1.0, 0.2), dura=(1.1, 0.2)),
}
#: why these values: relative tissue intensities of the real scans in ../shared/data/real after the
#: histogram-peak normalisation (docs/synth.md, "Calibration"), within textbook ranges.


def sample_intensities(rng: np.random.Generator, randomize: bool) -> dict[Modality, dict[str, float]]:
    """Per-case tissue intensities; ``randomize`` widens every range 2.5x (SynthSeg-style), floor 0.05."""
    widen = 2.5 if randomize else 1.0
    out: dict[Modality, dict[str, float]] = {}
    for m in MODALITIES:
        out[m] = {t: float(max(0.05, mu + widen * rng.uniform(-h, h))) for t, (mu, h) in BASE[m].items()}
    return out


def vessel_map(rng: np.random.Generator, shape: tuple[int, int, int], spacing: np.ndarray, csf: np.ndarray,
               brain: np.ndarray, near: list[np.ndarray], n_vessels: int) -> np.ndarray:
    """0..1 map of thin tortuous vessels, mostly in sulcal CSF, some around the tumour (``near``, voxel coords)."""
    out = np.zeros(shape, np.float32)
    if n_vessels <= 0:
        return out
    cand = (rng.random((4000, 3)) * (np.array(shape) - 1)).astype(int)
    ok = (csf[tuple(cand.T)] > 0.4) & brain[tuple(cand.T)]
    starts = cand[ok][:n_vessels].astype(float)
    extra = [c + rng.normal(0, 6.0 / spacing, (3, 3)) for c in near]
    if extra:
        starts = np.concatenate([starts, *extra])
    if len(starts) == 0:
        return out
    n, steps = len(starts), 90
    step_mm = 0.7
    direction = rng.normal(size=(n, 3))
    turns = rng.normal(scale=0.25, size=(n, steps, 3))
    dirs = np.cumsum(turns, axis=1) + direction[:, None, :]
    dirs /= np.linalg.norm(dirs, axis=2, keepdims=True) + 1e-9
    path_mm = np.cumsum(dirs * step_mm, axis=1) + (starts * spacing)[:, None, :]
    pts = (path_mm / spacing).reshape(-1, 3)
    radius_mm = np.repeat(rng.uniform(0.5, 1.3, n), steps)
    base = np.rint(pts).astype(int)
    for off in np.indices((3, 3, 3)).reshape(3, -1).T - 1:
        vox = base + off
        inside = np.all((vox >= 0) & (vox < np.array(shape)), axis=1)
        d_mm = np.linalg.norm((vox - pts) * spacing, axis=1)
        w = np.exp(-(d_mm**2) / radius_mm**2).astype(np.float32)
        flat = np.ravel_multi_index(vox[inside].T, shape)
        np.maximum.at(out.reshape(-1), flat, w[inside])
    out *= brain
    return out


def tumour_masks(labels: np.ndarray, spacing: np.ndarray, edema_blur_mm: float) -> dict[int, np.ndarray]:
    """Soft masks of each tumour label: core labels blurred ~0.5 mm (partial volume), edema more (its
    signal fades gradually into normal white matter). Computed in the tumour's bounding box only."""
    out = {lab: np.zeros(labels.shape, np.float32) for lab in (NCR, ED, ET)}
    idx = np.argwhere(labels > 0)
    if idx.size == 0:
        return out
    pad = np.ceil(3 * edema_blur_mm / spacing).astype(int) + 2
    box = tuple(slice(max(0, int(a) - p), min(n, int(b) + p + 1))
                for a, b, p, n in zip(idx.min(0), idx.max(0), pad, labels.shape))
    sub = labels[box]
    for lab in (NCR, ET):
        out[lab][box] = ndi.gaussian_filter((sub == lab).astype(np.float32), 0.5 / spacing, truncate=2.5)
    wt = ndi.gaussian_filter((sub > 0).astype(np.float32), edema_blur_mm / spacing, truncate=2.5)
    # edema weight: fuzzy whole-tumour extent minus the (sharp-edged) core
    out[ED][box] = np.clip(np.maximum(wt, (sub == ED)) - out[NCR][box] - out[ET][box], 0.0, 1.0) * np.clip(1.4 * wt, 0, 1)
    return out


def _noise(rng, shape, spacing, scale_mm) -> np.ndarray:
    fov = tuple(float(n * s) for n, s in zip(shape, spacing))
    return upsample(smooth_noise(rng, coarse_shape(fov, scale_mm), 1.0), shape)  # type: ignore[arg-type]


def render(rng: np.random.Generator, tissues: dict[str, np.ndarray], labels: np.ndarray, spacing: np.ndarray,
           intensities: dict[Modality, dict[str, float]], randomize: bool, params: dict) -> dict[Modality, np.ndarray]:
    """Noise-free images of the four modalities (WM ~ 1) from tissue maps, labels and confounders."""
    shape = labels.shape
    gm, wm, csf = tissues["gm"], tissues["wm"], tissues["csf"]
    plexus, vessels, dura = tissues["plexus"], tissues["vessel"], tissues["dura"]
    healthy_tex = 1.0 + rng.uniform(0.02, 0.07) * _noise(rng, shape, spacing, 3.0)
    shared_tumour_tex = _noise(rng, shape, spacing, rng.uniform(3.0, 7.0))
    enh_patch = _noise(rng, shape, spacing, rng.uniform(2.5, 6.0))
    ed_blur = rng.uniform(0.8, 2.5)
    masks = tumour_masks(labels, spacing, ed_blur) if labels.any() else {}
    tumour_total = sum(masks.values()) if masks else None
    tumour_sd = rng.uniform(0.06, 0.22)
    ed_mix = rng.uniform(0.2, 0.5)  # how much normal anatomy stays visible under edema
    et_sd = rng.uniform(0.1, 0.3)
    params.update(texture_sd=round(float(tumour_sd), 3), enhancement_patchiness=round(float(et_sd), 3),
                  edema_blur_mm=round(float(ed_blur), 2), edema_anatomy_mix=round(float(ed_mix), 3))
    images: dict[Modality, np.ndarray] = {}
    for m in MODALITIES:
        mu = intensities[m]
        own = _noise(rng, shape, spacing, 4.0)
        img = (gm * mu["gm"] + wm * mu["wm"] + csf * mu["csf"]) * healthy_tex
        img += plexus * (mu["plexus"] - mu["csf"]) + tissues["deep"] * (mu["deep"] - mu["gm"])
        if masks:
            healthy = img
            tex = 1.0 + tumour_sd * (0.7 * shared_tumour_tex + 0.3 * own)
            ed_val = mu["ed"] * (1.0 - ed_mix + ed_mix * healthy / mu["wm"]) * tex
            ncr_val = mu["ncr"] * tex
            enh = mu["et"] - mu["wm"]
            et_val = (mu["wm"] + enh * np.clip(1.0 + et_sd * 2 * enh_patch, 0.3, 1.8)) * tex
            img = healthy * np.clip(1.0 - tumour_total, 0.0, 1.0) + masks[ED] * ed_val + masks[NCR] * ncr_val + masks[ET] * et_val
        img = img * (1.0 - vessels) + vessels * mu["vessel"]
        img = img * (1.0 - dura) + dura * mu["dura"]
        images[m] = img.astype(np.float32)
    return images


def dura_map(rng: np.random.Generator, brain_prob: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Patchy enhancing rim at the brain's edge (dura/meningeal remnants left by skull stripping)."""
    edge = np.clip(1.0 - np.abs(brain_prob - 0.62) / 0.15, 0.0, 1.0)
    patch = np.clip(_noise(rng, brain_prob.shape, spacing, 8.0) - rng.uniform(0.0, 1.0), 0.0, 1.0)
    return (edge * patch * rng.uniform(0.3, 0.9)).astype(np.float32)
