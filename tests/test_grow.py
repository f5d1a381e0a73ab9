"""Growing a trained network into a wider one (models.grow, train --init-from with model_overrides)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from mmtumor.cli import app
from mmtumor.errors import InputError
from mmtumor.models.grow import widen_into
from mmtumor.models.registry import build_model

WIDER = {"base_features": 12, "max_features": 48}
SUBSETS = [[1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 1, 0], [1, 0, 0, 0]]


def _outputs(model, x, present):
    with torch.no_grad():
        return model.eval()(x, present)["logits"]


@pytest.mark.parametrize("method", ["a2fseg", "a2fseg-avg", "unet"])
def test_widened_network_computes_the_same_function(method):
    torch.manual_seed(0)
    narrow = build_model(method, preset="tiny")
    for p in narrow.parameters():  # trained-looking weights, not the initialisation (norm scales away from 1)
        p.data.add_(0.1 * torch.randn_like(p))
    wide = build_model(method, preset="tiny", **WIDER)
    x = torch.randn(2, 4, 24, 24, 24)
    present = torch.tensor([SUBSETS[0], SUBSETS[1]], dtype=torch.bool)
    before = _outputs(wide, x, present)
    assert not torch.allclose(before, _outputs(narrow, x, present), atol=1e-3)  # control: a fresh wide net differs
    widen_into(narrow, wide)
    assert sum(p.numel() for p in wide.parameters()) > 1.8 * sum(p.numel() for p in narrow.parameters())
    for subset in SUBSETS:
        pres = torch.tensor([subset, subset], dtype=torch.bool)
        torch.testing.assert_close(_outputs(wide, x, pres), _outputs(narrow, x, pres), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("overrides", [{"attention_maps": "channel"}, {"attention_maps": "channel", **WIDER}])
def test_single_attention_map_grows_into_one_per_channel(overrides):
    """A2FSeg's one fusion map per modality becomes one per channel (alone or with width) and keeps the function;
    the per-channel maps then train apart (their gradients differ)."""
    torch.manual_seed(2)
    narrow = build_model("a2fseg", preset="tiny")
    for p in narrow.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    grown = build_model("a2fseg", preset="tiny", **overrides)
    widen_into(narrow, grown)
    assert grown.attention[0].weight.shape[0] == grown.config.base_features > 1
    x = torch.randn(2, 4, 24, 24, 24)
    for subset in SUBSETS:
        pres = torch.tensor([subset, subset], dtype=torch.bool)
        torch.testing.assert_close(_outputs(grown, x, pres), _outputs(narrow, x, pres), atol=1e-4, rtol=1e-4)
    grown.train()
    present = torch.ones(1, 4, dtype=torch.bool)
    target = (torch.rand(1, 3, 24, 24, 24) > 0.7).float()
    grown.loss(grown(x[:1], present), target, present)["total"].backward()
    g = grown.attention[1].weight.grad
    assert not torch.allclose(g[0], g[1])


def test_new_channels_learn_after_widening():
    """The zero weights out of the new channels get gradient, so the extra width is trainable."""
    torch.manual_seed(1)
    narrow = build_model("a2fseg", preset="tiny")
    wide = build_model("a2fseg", preset="tiny", **WIDER)
    widen_into(narrow, wide)
    head = wide.adaptive_head.conv.weight  # [3, 12, 1, 1, 1]; inputs 8.. are new
    assert torch.count_nonzero(head[:, 8:]) == 0
    x = torch.randn(1, 4, 16, 16, 16)
    target = (torch.rand(1, 3, 16, 16, 16) > 0.7).float()
    present = torch.ones(1, 4, dtype=torch.bool)
    wide.train()
    loss = wide.loss(wide(x, present), target, present)["total"]
    loss.backward()
    assert head.grad[:, 8:].abs().sum() > 0


def test_widening_refuses_a_narrower_or_other_network():
    a2f = build_model("a2fseg", preset="tiny", **WIDER)
    with pytest.raises(InputError, match="does not fit"):
        widen_into(a2f, build_model("a2fseg", preset="tiny"))
    with pytest.raises(InputError, match="not the same architecture"):
        widen_into(build_model("unet", preset="tiny"), a2f)


def test_cli_trains_a_wider_model_grown_from_weights(phantoms, tmp_path):
    """train --init-from W with a config that widens: the run is the wider model and starts from W's function."""
    runner = CliRunner()
    common = ["--preset", "tiny", "--epochs", "1", "--iters-per-epoch", "1", "--patch", "32", "32", "32", "--device",
              "cpu", "--workers", "0", "--no-amp", "--val-every", "0", "-q", "--target-spacing", "2"]
    r = runner.invoke(app, ["train", str(phantoms), "--method", "a2fseg", "-o", str(tmp_path / "base"), *common])
    assert r.exit_code == 0, r.output
    cfg = tmp_path / "wide.json"
    cfg.write_text(json.dumps({"model_overrides": WIDER}))
    r = runner.invoke(app, ["train", str(phantoms), "--method", "a2fseg", "-o", str(tmp_path / "wide"), "--init-from",
                            str(tmp_path / "base"), "--config", str(cfg), "--lr", "1e-12", *common])
    assert r.exit_code == 0, r.output
    ck = torch.load(tmp_path / "wide" / "last.pt", weights_only=True)
    base = torch.load(tmp_path / "base" / "best.pt", weights_only=True)["model"]
    w = ck["model"]["adaptive_head.conv.weight"]
    assert w.shape[1] == 12
    torch.testing.assert_close(w[:, :8], base["adaptive_head.conv.weight"], atol=1e-6, rtol=0)
    r = runner.invoke(app, ["weights", "export", str(tmp_path / "wide"), "-o", str(tmp_path / "w"), "--name", "wide"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "w" / "wide.json").read_text())["config"]["base_features"] == 12

    cfg.write_text(json.dumps({"model_overrides": {"no_such_option": 3}}))
    r = runner.invoke(app, ["train", str(phantoms), "--method", "a2fseg", "-o", str(tmp_path / "bad"), "--init-from",
                            str(tmp_path / "base"), "--config", str(cfg), *common])
    assert r.exit_code == 1 and "model_overrides" in r.output and "Traceback" not in r.output


def test_growth_refuses_a_method_it_cannot_preserve():
    """HeMIS's fusion layers are not the U-Net's: growth checks the function and says so instead of training a
    network that silently forgot its weights."""
    from mmtumor.models.grow import grown

    narrow = build_model("hemis", preset="tiny")
    with pytest.raises(InputError, match="cannot widen 'hemis'"):
        grown(narrow, "hemis", {"base_features": 12})
    same = {"base_features": narrow.config.base_features}
    assert grown(narrow, "hemis", same) is narrow  # overrides that change nothing leave the weights as they are


def test_learned_attention_leak_grows_from_fixed_weights():
    """train --init-from W with {"attention_leak": "learned"}: the new leak starts at 0, the same function."""
    from mmtumor.models.grow import grown

    torch.manual_seed(3)
    fixed = build_model("a2fseg", preset="tiny")
    for p in fixed.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    leaky = grown(fixed, "a2fseg", {"attention_leak": "learned", "attention_maps": "channel"})
    assert leaky.config.attention_leak == "learned" and float(leaky.attention_leak_param.detach()) == 0.0
    x = torch.randn(1, 4, 24, 24, 24)
    pres = torch.ones(1, 4, dtype=torch.bool)
    torch.testing.assert_close(_outputs(leaky, x, pres), _outputs(fixed, x, pres), atol=1e-4, rtol=1e-4)
