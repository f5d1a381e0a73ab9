"""Method-specific tests for RobustSeg, mmFormer, the master-assistant U-Net and the MedMAP alignment add-on.

The contract every method shares (shapes, invariance, gradients, overfit) lives in tests/test_models.py; these tests
check what is particular to each paper. Volumes are 16^3 where the method allows, to stay fast on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

torch = pytest.importorskip("torch")

from mmtumor.errors import InputError  # noqa: E402
from mmtumor.models import registry  # noqa: E402
from mmtumor.models.master_assistant import resolve_masters  # noqa: E402
from mmtumor.models.medmap import MedMAP, gaussian_kl, with_alignment  # noqa: E402
from mmtumor.models.robustseg import latent_dropout  # noqa: E402

S = 16


def _present(rows: list[str]) -> torch.Tensor:
    return torch.tensor([[c == "1" for c in r] for r in rows], dtype=torch.bool)


def _build(name: str, **overrides):
    torch.manual_seed(0)
    return registry.build_model(name, "tiny", **overrides)


def _target(b: int, size: int = S, dims: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return (torch.rand(b, 3, *([size] * dims), generator=g) > 0.7).float()


# ---------------------------------------------------------------- RobustSeg


def test_robustseg_loss_has_finite_seg_rec_kl_terms_weighted_as_in_the_paper() -> None:
    model = _build("robustseg").train()
    present = _present(["0110", "1111"])
    torch.manual_seed(1)
    out = model(torch.randn(2, 4, S, S, S), present)
    assert out["recon"].shape == (2, 4, S, S, S) and out["app_mu"].shape == (2, 4, 8)
    terms = model.loss(out, _target(2), present)
    assert {"seg", "rec", "kl", "total"} <= set(terms)
    for k in ("seg", "rec", "kl", "total"):
        assert torch.isfinite(terms[k]) and terms[k] > 0, k
    assert torch.allclose(terms["total"], terms["seg"] + 0.1 * terms["rec"] + 0.1 * terms["kl"])
    # absent modalities are neither reconstructed nor counted: garbage there changes no term
    absent = ~present
    assert (out["recon"][absent] == 0).all() and (out["app_mu"][absent] == 0).all()
    spoiled = dict(out)
    spoiled["recon"] = out["recon"].detach().clone()
    spoiled["recon"][absent] = 1e3
    spoiled["app_mu"] = out["app_mu"].detach().clone()
    spoiled["app_mu"][absent] = 1e3
    t2 = model.loss(spoiled, _target(2), present)
    assert torch.allclose(t2["rec"], terms["rec"]) and torch.allclose(t2["kl"], terms["kl"])


def test_robustseg_eval_skips_the_reconstruction_branch() -> None:
    model = _build("robustseg").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 4, S, S, S), _present(["1010"]))
    assert "recon" not in out
    assert set(model.loss(out, _target(1), _present(["1010"]))) == {"seg", "total"}


def test_latent_dropout_keeps_at_least_one_present_modality() -> None:
    g = torch.Generator().manual_seed(0)
    present = torch.rand(2000, 4, generator=g) > 0.4
    present[~present.any(1), 0] = True
    keep = latent_dropout(present, 0.5, generator=g)
    assert (keep <= present).all(), "only present modalities can be kept"
    assert keep.any(1).all(), "every sample keeps at least one modality"
    rate = 1 - keep.sum() / present.sum()
    assert 0.3 < float(rate) < 0.55  # ~0.5 minus the rescued ones
    single = present.sum(1) == 1
    assert torch.equal(keep[single], present[single])  # a lone modality is never dropped
    assert torch.equal(latent_dropout(present, 0.0), present)


def test_robustseg_gates_exclude_absent_and_dropped_modalities() -> None:
    model = _build("robustseg")
    present = _present(["1001", "0111"])
    x = torch.randn(2, 4, S, S, S)
    with torch.no_grad():
        gates = model.eval()(x, present)["gate_maps"]
        assert gates.shape == (2, 4, S, S, S)
        assert (gates[~present] == 0).all() and (gates[present] > 0).all()
        model.train()
        for seed in range(2):
            torch.manual_seed(seed)
            out = model(x, present)
            kept = out["kept"]
            assert (out["gate_maps"][~kept] == 0).all() and (out["gate_maps"][kept] > 0).all()
            # pseudo-cycle: a present modality is reconstructed even when its content code was dropped
            dropped = present & ~kept
            if dropped.any():
                assert (out["recon"][dropped].abs().sum((-3, -2, -1)) > 0).all()


# ---------------------------------------------------------------- mmFormer


def test_mmformer_inter_modal_attention_masks_absent_tokens() -> None:
    model = _build("mmformer").eval()
    present = _present(["0101", "1110"])
    E = model.config.embed_dim
    grid = (2, 2, 2)
    tokens = torch.randn(2, 4, 8, E)
    tokens[~present] = 0
    noisy = tokens.clone()
    noisy[~present] = 50 * torch.randn_like(noisy[~present])  # even non-zero absent tokens must not leak
    with torch.no_grad():
        a, b = model.inter_modal(tokens, present, grid), model.inter_modal(noisy, present, grid)
    assert a.shape == (2, model.features[-1], *grid)
    assert torch.allclose(a, b, atol=1e-6)


def test_mmformer_auxiliary_outputs_only_for_present_modalities() -> None:
    model = _build("mmformer").train()
    present = _present(["0101", "0100"])
    out = model(torch.randn(2, 4, S, S, S), present)
    lm = out["logits_modality"]
    assert lm.shape == (2, 4, 3, S, S, S)
    assert (lm[~present] == 0).all() and (lm[present].abs().sum((-4, -3, -2, -1)) > 0).all()
    terms = model.loss(out, _target(2), present)
    assert set(terms) == {"fuse", "deep_supervision", "aux_T1c", "aux_FLAIR", "total"}
    expected = terms["fuse"] + terms["deep_supervision"] + terms["aux_T1c"] + terms["aux_FLAIR"]
    assert torch.allclose(terms["total"], expected)
    model.eval()
    with torch.no_grad():
        assert "logits_modality" not in model(torch.randn(1, 4, S, S, S), present[:1])


def test_mmformer_other_input_size_resamples_positional_embedding() -> None:
    model = _build("mmformer").eval()  # tiny: patch 32 -> 4^3 token grid; a 16^3 input has a 2^3 grid
    with torch.no_grad():
        out = model(torch.randn(1, 4, 24, 16, 16), _present(["1111"]))
    assert out["logits"].shape == (1, 3, 24, 16, 16)


# ---------------------------------------------------------------- master-assistant


def test_master_priority_fallback_per_sample() -> None:
    rows = ["1111", "1011", "1010", "1000", "0101"]
    model = _build("master-assistant").eval()
    with torch.no_grad():
        out = model(torch.randn(5, 4, S, S, S), _present(rows))
    # default priority T1c, FLAIR, T2, T1 (canonical indices 1, 3, 2, 0)
    assert out["master"].tolist() == [1, 3, 2, 0, 1]
    flair_first = _build("master-assistant", master="FLAIR")
    assert resolve_masters(_present(rows), flair_first.priority).tolist() == [3, 3, 2, 0, 3]


def test_heatmap_is_computed_from_the_master_only() -> None:
    model = _build("master-assistant").eval()
    present = _present(["0101"])  # T1c master, FLAIR assistant
    x = torch.randn(1, 4, S, S, S)
    other = x.clone()
    other[:, 3] = torch.randn(S, S, S)  # new assistant content
    with torch.no_grad():
        a, b = model(x, present), model(other, present)
    assert torch.equal(a["heatmap"], b["heatmap"])  # the level-0 heatmap reads the master stream alone
    assert not torch.allclose(a["logits"], b["logits"])  # but the assistant does feed the segmentation
    assert ((a["heatmap"] > 0) & (a["heatmap"] < 1)).all()


def test_master_assistant_2d_two_modalities_as_in_the_paper() -> None:
    model = _build("master-assistant", modalities=("T1c", "FLAIR"), spatial_dims=2).train()
    assert len(model.stages) == 2
    present = _present(["0101", "0001"])
    x = torch.randn(2, 4, 32, 32)
    out = model(x, present)
    assert out["logits"].shape == (2, 3, 32, 32) and out["master"].tolist() == [1, 3]
    model.loss(out, _target(2, 32, 2), present)["total"].backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        noisy = x.clone()
        noisy[:, 0] = 1e3  # T1 has no stream: ignored even if flagged present
        assert torch.equal(model(x, present)["logits"], model(noisy, _present(["1101", "1001"]))["logits"])
        with pytest.raises(InputError):
            model(x, _present(["1000", "0001"]))


def test_master_assistant_paper2d_preset() -> None:
    cfg = registry.make_config("master-assistant", "paper2d")
    assert cfg.spatial_dims == 2 and cfg.modalities == ("T1c", "FLAIR")
    with torch.device("meta"):
        model = registry.build_model("master-assistant", config=cfg)
    assert model.stream_features == [32, 64, 128, 256, 512]  # FuseUNet: half of the 64..1024 U-Net per stream


@pytest.mark.parametrize("name", ["robustseg", "mmformer", "master-assistant"])
def test_nan_in_a_missing_channel_does_not_leak(name: str) -> None:
    model = _build(name).eval()
    model.aux_in_eval = True  # robustseg/mmformer: also the training-only branches
    present = _present(["0111", "1000"])
    x = torch.randn(2, 4, S, S, S)
    bad = x.clone()
    bad[~present] = float("nan")
    with torch.no_grad():
        a, b = model(x, present), model(bad, present)
    for k, v in a.items():
        if torch.is_tensor(v):
            assert torch.equal(v, b[k]), k


# ---------------------------------------------------------------- MedMAP


def _feats(present: torch.Tensor, C: int = 6, n: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(present.shape[0], 4, C, n, n, n, generator=g)
    f = f * torch.arange(1, 5).view(1, 4, 1, 1, 1, 1) + torch.arange(4).view(1, 4, 1, 1, 1, 1)  # modality gaps
    f[~present] = 0
    return f.requires_grad_()


def _wrap(anchor: str, **kw) -> MedMAP:
    return with_alignment(_build("robustseg"), "medmap", anchor=anchor, **kw)


def test_gaussian_kl_closed_form() -> None:
    kl = gaussian_kl(torch.tensor(1.0), torch.tensor(2.0), torch.tensor(0.0), torch.tensor(1.0))
    assert math.isclose(float(kl), 0.5 * (math.log(0.5) + 2 + 1 - 1), rel_tol=1e-6)
    assert float(gaussian_kl(torch.tensor(0.3), torch.tensor(0.7), torch.tensor(0.3), torch.tensor(0.7))) == 0


def test_medmap_adaptive_weights_renormalised_over_present_modalities() -> None:
    mm = _wrap("adaptive")
    with torch.no_grad():
        mm.anchor_logits.copy_(torch.tensor([0.0, 1.0, 2.0, 3.0]))
    present = _present(["1111", "0101", "0010"])
    w = mm.anchor_weights(present)
    assert torch.allclose(w.sum(1), torch.ones(3)) and (w[~present] == 0).all()
    assert torch.allclose(w[0], torch.softmax(torch.tensor([0.0, 1, 2, 3]), 0))
    assert torch.allclose(w[1, [1, 3]], torch.softmax(torch.tensor([1.0, 3.0]), 0))
    assert w[2, 2] == 1
    fixed = _wrap("fixed", fixed_weights=(1, 1, 2, 4)).anchor_weights(present)
    assert torch.allclose(fixed[1], torch.tensor([0, 0.2, 0, 0.8])) and not _wrap("fixed").anchor_logits.requires_grad


@pytest.mark.parametrize("anchor", ["adaptive", "fixed", "normal"])
def test_medmap_anchors(anchor: str) -> None:
    mm = _wrap(anchor)
    present = _present(["1111", "0110"])
    gapped = mm.alignment_loss(_feats(present), present)
    assert torch.isfinite(gapped) and gapped > 0
    same = _feats(present)[:, 1:2].detach().expand(-1, 4, -1, -1, -1, -1).clone()  # T1c: present in both rows
    same[~present] = 0
    aligned = mm.alignment_loss(same, present)
    if anchor == "normal":
        std = (same - same.mean((3, 4, 5), keepdim=True)) / same.std((3, 4, 5), unbiased=False, keepdim=True)
        std[~present] = 0
        assert mm.alignment_loss(std, present) < 1e-4  # already N(0, 1) per channel
        assert aligned > 0
    else:
        assert aligned < 1e-5  # identical modalities already share the mixture
        one = _present(["0010"])
        assert mm.alignment_loss(_feats(one), one) < 1e-5  # the mixture of one modality is that modality


def test_medmap_alignment_matches_the_written_formula() -> None:
    mm = _wrap("fixed")
    present = _present(["1100"])
    f = _feats(present).detach()
    a, b = f[0, 0].flatten(1), f[0, 1].flatten(1)
    mu = torch.stack([a.mean(1), b.mean(1)])
    var = torch.stack([a.var(1, unbiased=False), b.var(1, unbiased=False)]) + 1e-5
    mu_a = mu.mean(0)
    var_a = (var + mu**2).mean(0) - mu_a**2
    kl = 0.5 * (torch.log(var_a / var) + (var + (mu - mu_a) ** 2) / var_a - 1)
    assert torch.allclose(mm.alignment_loss(f, present), kl.mean(), rtol=1e-5)
    vox = _wrap("normal", stats="voxel")  # N(f, 1) vs N(0, 1): KL = f^2 / 2
    assert torch.allclose(vox.alignment_loss(f, present), 0.5 * (f[0, :2] ** 2).mean(), rtol=1e-5)


def test_medmap_gradients_reach_the_anchor_weights_and_features() -> None:
    mm = _wrap("adaptive")
    present = _present(["1111", "1011"])
    f = _feats(present)
    mm.alignment_loss(f, present).backward()
    assert mm.anchor_logits.grad is not None and mm.anchor_logits.grad.abs().sum() > 0
    assert f.grad[present].abs().sum() > 0 and (f.grad[~present] == 0).all()


def test_medmap_wrapper_keeps_backbone_terms_and_interface() -> None:
    mm = _wrap("adaptive", weight=0.5).train()
    present = _present(["1011", "0100"])
    torch.manual_seed(0)
    out = mm(torch.randn(2, 4, S, S, S), present)
    assert torch.allclose(out["anchor_weights"].sum(1), torch.ones(2)) and (out["anchor_weights"][~present] == 0).all()
    terms = mm.loss(out, _target(2), present)
    base = mm.backbone.loss(out, _target(2), present)
    assert {"seg", "rec", "kl", "align", "total"} <= set(terms)
    assert torch.allclose(terms["total"], base["total"] + 0.5 * terms["align"])
    terms["total"].backward()
    assert mm.anchor_logits.grad is not None and mm.anchor_logits.grad.abs().sum() > 0
    assert mm.method == "robustseg" and mm.alignment == "medmap" and mm.config is mm.backbone.config
    # the add-on's options are a JSON-friendly dataclass that rebuilds the same wrapper
    saved = json.loads(json.dumps(dataclasses.asdict(mm.align_config)))
    again = with_alignment(mm.backbone, "medmap", **saved)
    assert again.align_config == mm.align_config


def test_with_alignment_errors_and_passthrough() -> None:
    model = _build("master-assistant")
    assert with_alignment(model, None) is model and with_alignment(model, "none") is model
    with pytest.raises(InputError):
        with_alignment(model, "nope")
    with pytest.raises(InputError):
        with_alignment(model, "medmap", anchor="banana")

    class NoFeatures(registry.FusionModel):
        def forward(self, x, present):
            return {"logits": x[:, :3]}

    with pytest.raises(InputError):
        with_alignment(NoFeatures(None), "medmap")(torch.randn(1, 4, 4, 4, 4), _present(["1111"]))
