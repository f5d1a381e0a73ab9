"""Every registered fusion method against the model contract (mmtumor/models/registry.py), plus method specifics.

Generic tests are parametrised over ``registry.methods()`` so a newly registered method is tested automatically.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time

import pytest

torch = pytest.importorskip("torch")

from mmtumor.errors import InputError  # noqa: E402
from mmtumor.models import registry  # noqa: E402

METHODS = [spec.name for spec in registry.methods()]
#: one overfit test per family: the ablation shares a2fseg's networks and loss terms
SAME_FAMILY_AS = {"a2fseg-avg": "a2fseg"}
#: edge of the volumes in the interface tests (tiny presets downsample 2-3 times); speed and overfit use 32^3
SIZE = 16
PATCH = 32


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Run these small-tensor tests on one thread: on a shared 2-core machine OpenMP's second thread mostly spins
    (measured: a2fseg tiny step 0.9 CPU s with 1 thread vs 5-7 CPU s and 3x the wall time with 2, under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _present(rows: list[str]) -> torch.Tensor:
    return torch.tensor([[c == "1" for c in r] for r in rows], dtype=torch.bool)


#: a batch whose rows differ: 1, 2, 3 and 4 present modalities
MIXED = ["0100", "1001", "0111", "1111"]


def _build(name: str, **overrides):
    torch.manual_seed(0)
    return registry.build_model(name, "tiny", **overrides)


def _tensors(out) -> list[tuple[str, torch.Tensor]]:
    """Flatten a model's outputs (tensors, lists/tuples/dicts of tensors) into named tensors."""
    flat: list[tuple[str, torch.Tensor]] = []

    def walk(prefix: str, v) -> None:
        if torch.is_tensor(v):
            flat.append((prefix, v))
        elif isinstance(v, (list, tuple)):
            for i, item in enumerate(v):
                walk(f"{prefix}[{i}]", item)
        elif isinstance(v, dict):
            for k, item in v.items():
                walk(f"{prefix}.{k}", item)

    walk("", out)
    return flat


def _run(model, x: torch.Tensor, present: torch.Tensor, seed: int = 0):
    torch.manual_seed(seed)  # identical randomness (if any) between the runs we compare
    return model(x, present)


# ---------------------------------------------------------------- registry and configs


def test_registry_lists_the_methods_of_this_module_family() -> None:
    for name in ("a2fseg", "a2fseg-avg", "unet", "hemis"):
        assert name in METHODS


def test_unknown_method_and_bad_option_are_user_errors() -> None:
    with pytest.raises(InputError):
        registry.get_spec("no-such-method")
    with pytest.raises(InputError):
        registry.make_config("unet", "tiny", no_such_option=1)
    with pytest.raises(InputError):
        registry.make_config("unet", "no-such-preset")


@pytest.mark.parametrize("name", METHODS)
def test_presets_are_json_serialisable_and_round_trip(name: str) -> None:
    spec = registry.get_spec(name)
    assert {"tiny", "paper"} <= set(spec.presets)
    assert spec.description
    for preset in ("tiny", "paper"):
        cfg = registry.make_config(name, preset)
        values = json.loads(json.dumps(dataclasses.asdict(cfg)))
        assert registry.config_from_dict(name, values) == cfg


@pytest.mark.parametrize("name", METHODS)
def test_paper_preset_is_larger_than_tiny(name: str) -> None:
    with torch.device("meta"):  # count parameters without allocating the paper-size weights
        paper = registry.build_model(name, "paper")
    tiny = _build(name)
    assert registry.count_parameters(paper) > registry.count_parameters(tiny) > 0


# ---------------------------------------------------------------- the interface, for every method


@pytest.mark.parametrize("name", METHODS)
def test_output_shapes_for_one_to_four_modalities(name: str) -> None:
    model = _build(name).eval()
    cases = [MIXED, ["0010", "0010"]]  # rows that differ, and a batch sharing one single-modality row
    with torch.no_grad():
        for rows in cases:
            present = _present(rows)
            x = torch.randn(len(rows), 4, SIZE, SIZE, SIZE)
            out = _run(model, x, present)
            assert out["logits"].shape == (len(rows), 3, SIZE, SIZE, SIZE)
            for key, t in _tensors(out):
                assert torch.isfinite(t).all(), f"{name}: non-finite values in {key}"
            if "modality_features" in out:
                f = out["modality_features"]
                assert f.shape[:2] == (len(rows), 4) and f.ndim == 6
                assert (f[~present] == 0).all(), "absent modalities' features must be zero"


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("name", METHODS)
def test_missing_channel_content_changes_nothing(name: str, mode: str) -> None:
    model = _build(name).train(mode == "train")  # train: same seed, so any random dropout draws are identical
    rows = MIXED[:3]  # the rows that miss something
    present = _present(rows)
    x = torch.randn(len(rows), 4, SIZE, SIZE, SIZE)
    noisy = x.clone()
    noisy[~present] = 100 * torch.randn_like(noisy[~present]) + 7
    with torch.no_grad():
        a, b = _tensors(_run(model, x, present)), _tensors(_run(model, noisy, present))
    assert [k for k, _ in a] == [k for k, _ in b]
    for (key, ta), (_, tb) in zip(a, b, strict=True):
        assert torch.allclose(ta, tb, atol=1e-6, rtol=0), f"{name}: output {key} depends on a missing channel"


@pytest.fixture(scope="module")
def train_step():
    """One tiny training step (loss + backward) on a 32^3 patch per method, shared by the speed and gradient tests."""
    cache: dict[str, dict] = {}

    def run(name: str) -> dict:
        if name not in cache:
            model = _build(name).train()
            present = _present(["1111"])
            x = torch.randn(1, 4, PATCH, PATCH, PATCH)
            target = (torch.rand(1, 3, PATCH, PATCH, PATCH) > 0.8).float()
            wall, cpu = time.perf_counter(), time.process_time()
            terms = model.loss(_run(model, x, present), target, present)
            terms["total"].backward()
            cache[name] = {
                "model": model,
                "terms": terms,
                "wall": time.perf_counter() - wall,
                "cpu": time.process_time() - cpu,
            }
        return cache[name]

    return run


@pytest.mark.parametrize("name", METHODS)
def test_tiny_forward_backward_is_fast(name: str, train_step) -> None:
    step = train_step(name)
    # CPU seconds of this (single-threaded) process: robust to a shared machine, about the wall time on an idle one
    assert step["cpu"] < 5.0, f"{name}: tiny forward+backward on 32^3 took {step['cpu']:.2f} CPU s ({step['wall']:.2f} s wall)"


@pytest.mark.parametrize("name", METHODS)
def test_loss_reaches_every_parameter(name: str, train_step) -> None:
    step = train_step(name)
    model, terms = step["model"], step["terms"]
    assert "total" in terms and terms["total"].ndim == 0 and torch.isfinite(terms["total"])
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    # methods with random modality dropout may skip a branch in one pass: a few more seeded passes must reach it
    present = _present(["1111"])
    x = torch.randn(1, 4, SIZE, SIZE, SIZE)
    target = (torch.rand(1, 3, SIZE, SIZE, SIZE) > 0.8).float()
    for seed in range(1, 4):
        if not missing:
            break
        model.loss(_run(model, x, present, seed), target, present)["total"].backward()
        missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{name}: no gradient reaches {missing[:5]}"
    for n, p in model.named_parameters():
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient in {n}"
    assert sum(float(p.grad.abs().sum()) for p in model.parameters()) > 0


@pytest.mark.parametrize("name", METHODS)
def test_no_present_modality_is_rejected(name: str) -> None:
    model = _build(name).eval()
    with pytest.raises(InputError):
        model(torch.randn(2, 4, 16, 16, 16), _present(["1000", "0000"]))


@pytest.mark.parametrize("name", METHODS)
def test_two_dimensional_variant(name: str) -> None:
    fields = {f.name for f in dataclasses.fields(registry.get_spec(name).config_cls)}
    if "spatial_dims" not in fields:
        pytest.skip(f"{name} is 3D only")
    model = _build(name, spatial_dims=2).train()
    present = _present(["0101", "1111"])
    x = torch.randn(2, 4, PATCH, PATCH)
    out = _run(model, x, present)
    assert out["logits"].shape == (2, 3, PATCH, PATCH)
    target = (torch.rand(2, 3, PATCH, PATCH) > 0.8).float()
    model.loss(out, target, present)["total"].backward()


# ---------------------------------------------------------------- overfit one phantom


def _phantom(n: int = PATCH) -> tuple[torch.Tensor, torch.Tensor]:
    """A sphere tumour (ET inside TC inside WT) seen with a different contrast in each of the 4 channels, plus noise."""
    g = torch.Generator().manual_seed(1)
    ax = torch.arange(n, dtype=torch.float32) - (n - 1) / 2
    zz, yy, xx = torch.meshgrid(ax + 2, ax - 1, ax + 1, indexing="ij")
    r = torch.sqrt(zz**2 + yy**2 + xx**2)
    wt, tc, et = r < 11, r < 7.5, r < 4.5
    # rows: T1, T1c, T2, FLAIR; columns: background, edema, non-enhancing core, enhancing tumour
    levels = torch.tensor([[1.0, 0.7, 0.5, 0.6], [1.0, 0.8, 0.6, 2.0], [1.0, 1.8, 1.4, 1.2], [1.0, 1.9, 1.0, 1.1]])
    tissue = wt.long() + tc.long() + et.long()
    x = levels[:, tissue] + 0.1 * torch.randn(4, n, n, n, generator=g)
    return x[None], torch.stack([wt, tc, et]).float()[None]


def _dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    pred = (logits > 0).float()
    dims = (0, *range(2, pred.ndim))
    return 2 * (pred * target).sum(dims) / (pred.sum(dims) + target.sum(dims)).clamp_min(1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", [m for m in METHODS if m not in SAME_FAMILY_AS])
def test_tiny_model_overfits_one_phantom(name: str) -> None:
    x, target = _phantom()
    present = _present(["1111"])
    model = _build(name).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    start = None
    best = torch.zeros(3)
    for _ in range(30):
        out = model(x, present)
        dice = _dice(out["logits"].detach(), target)
        start = dice if start is None else start
        best = torch.maximum(best, dice)
        if best[0] >= 0.8 and best.mean() >= 0.5:
            break
        opt.zero_grad()
        model.loss(out, target, present)["total"].backward()
        opt.step()
    # chance level: predicting everything as tumour gives Dice (0.29, 0.10, 0.02)
    assert best[0] >= 0.8 and best.mean() >= 0.5, f"{name}: Dice {best.tolist()} (start {start.tolist()})"


# ---------------------------------------------------------------- A2FSeg specifics


def test_a2fseg_weights_are_a_softmax_over_present_modalities_only() -> None:
    model = _build("a2fseg").eval()
    present = _present(MIXED)
    with torch.no_grad():
        out = model(torch.randn(len(MIXED), 4, SIZE, SIZE, SIZE), present)
    w = out["weights"]
    assert w.shape == (len(MIXED), 4, 1, SIZE, SIZE, SIZE)  # default: one map per modality
    assert torch.allclose(w.sum(1), torch.ones(()), atol=1e-6)
    assert (w[~present] == 0).all()
    assert (w[present] > 0).all()


def test_a2fseg_channel_attention_option() -> None:
    model = _build("a2fseg", attention_maps="channel").eval()
    present = _present(["0110", "1111"])
    with torch.no_grad():
        out = model(torch.randn(2, 4, SIZE, SIZE, SIZE), present)
    C = model.config.base_features
    assert out["weights"].shape == (2, 4, C, SIZE, SIZE, SIZE)
    assert torch.allclose(out["weights"].sum(1), torch.ones(()), atol=1e-6)
    with pytest.raises(InputError):
        _build("a2fseg", attention_maps="bogus")
    with pytest.raises(InputError):
        _build("a2fseg", attention_kernel=2)


def test_a2fseg_learned_attention_leak_starts_as_the_paper_and_revives_saturated_maps() -> None:
    """Eq. 2 as written caps a modality's weight (softmax over sigmoids: at most e / (e + 3) ~ 0.48 of four) and is
    uniform with no gradient where every map saturates near 0; the learned leak starts at 0 (the same weights),
    gets gradient exactly there, and once grown lets one modality pass the cap."""
    x = torch.randn(1, 4, SIZE, SIZE, SIZE)
    present = _present(["1111"])
    fixed = _build("a2fseg").eval()
    leaky = _build("a2fseg", attention_leak="learned")
    leaky.load_state_dict(fixed.state_dict(), strict=False)
    with torch.no_grad():
        w_fixed, w_leaky = fixed(x, present)["weights"], leaky.eval()(x, present)["weights"]
    assert w_fixed.max() < math.e / (math.e + 3) + 1e-6
    torch.testing.assert_close(w_leaky, w_fixed)
    with torch.no_grad():  # saturate every map near 0 (z of -12 to -9): uniform weights, as measured in tumour
        for m, conv in enumerate(leaky.attention):
            conv.weight.zero_()
            conv.bias.fill_(-12.0 + m)
    leaky.train()
    out = leaky(x, present)
    assert torch.allclose(out["weights"], torch.full_like(out["weights"], 0.25), atol=1e-3)
    leaky.loss(out, (torch.rand(1, 3, SIZE, SIZE, SIZE) > 0.7).float(), present)["total"].backward()
    assert leaky.attention[1].bias.grad.abs() < 1e-3 * leaky.attention_leak_param.grad.abs()  # the sigmoid is flat
    with torch.no_grad():
        leaky.attention_leak_param.fill_(0.2)  # leak 2: the z differences now decide
        leaky.attention[1].bias.fill_(-1.0)  # T1c's map least negative
        w = leaky.eval()(x, present)["weights"]
    assert w[:, 1].min() > 0.95
    with pytest.raises(InputError):
        _build("a2fseg", attention_leak="bogus")


def test_a2fseg_single_modality_fusion_is_that_modality() -> None:
    model = _build("a2fseg").eval()
    rows = ["1000", "0100", "0010", "0001"]
    with torch.no_grad():
        out = model(torch.randn(4, 4, SIZE, SIZE, SIZE), _present(rows))
    for i in range(4):
        assert torch.allclose(out["fused_features"][i], out["modality_features"][i, i], atol=1e-6)
        assert torch.equal(out["weights"][i, i], torch.ones_like(out["weights"][i, i]))


def test_a2fseg_avg_is_the_average_fusion_only() -> None:
    model = _build("a2fseg-avg").eval()
    present = _present(["0110", "1111"])
    x = torch.randn(2, 4, SIZE, SIZE, SIZE)
    with torch.no_grad():
        out = model(x, present)
    assert "weights" not in out and not hasattr(model, "attention")
    assert torch.equal(out["logits"], out["logits_avg"])
    f = out["modality_features"]
    # F_bar of the T1c+T2 row is the mean of those two modalities' features, and the avg head reads it
    assert torch.allclose(model.avg_head(f[0, 1:3].mean(0)[None]), out["logits_avg"][:1], atol=1e-5)
    terms = model.loss(out, (torch.rand(2, 3, SIZE, SIZE, SIZE) > 0.8).float(), present)
    assert "adaptive" not in terms and "avg" in terms


def test_a2fseg_loss_has_modality_terms_only_for_present_modalities() -> None:
    model = _build("a2fseg").train()
    present = _present(["0110", "0100"])
    out = model(torch.randn(2, 4, SIZE, SIZE, SIZE), present)
    terms = model.loss(out, (torch.rand(2, 3, SIZE, SIZE, SIZE) > 0.8).float(), present)
    assert set(terms) == {"modality_T1c", "modality_T2", "avg", "adaptive", "total"}
    expected = terms["modality_T1c"] + terms["modality_T2"] + terms["avg"] + terms["adaptive"]
    assert torch.allclose(terms["total"], expected)


@pytest.mark.parametrize("name,branches", [("a2fseg", "branches.unets"), ("hemis", "encoders")])
def test_absent_branches_are_not_computed(name: str, branches: str) -> None:
    model = _build(name).eval()
    nets = model.get_submodule(branches)
    seen: dict[int, int] = {}
    for m, net in enumerate(nets):
        net.register_forward_hook(lambda mod, inp, out, m=m: seen.__setitem__(m, inp[0].shape[0]))
    with torch.no_grad():
        model(torch.randn(3, 4, SIZE, SIZE, SIZE), _present(["0110", "0100", "0101"]))
    # T1 absent everywhere: never run; T2 and FLAIR each present in one row: run on that row only
    assert seen == {1: 3, 2: 1, 3: 1}


# ---------------------------------------------------------------- HeMIS and U-Net specifics


def test_hemis_moments_over_present_modalities() -> None:
    from mmtumor.models.hemis import mean_var_fusion

    feats = torch.randn(2, 4, 3, 5, 5, 5)
    present = _present(["0010", "1010"])
    feats[~present] = 0
    mean, var = mean_var_fusion(feats, present)
    assert torch.equal(mean[0], feats[0, 2]) and (var[0] == 0).all()  # one modality: variance exactly 0
    pair = feats[1, [0, 2]]
    assert torch.allclose(mean[1], pair.mean(0), atol=1e-6)
    assert torch.allclose(var[1], pair.var(0, unbiased=False), atol=1e-6)


@pytest.mark.parametrize("name", ["unet", "hemis", "a2fseg", "a2fseg-avg"])
def test_nan_in_a_missing_channel_does_not_leak(name: str) -> None:
    model = _build(name).eval()
    present = _present(["0111", "1000"])
    x = torch.randn(2, 4, SIZE, SIZE, SIZE)
    bad = x.clone()
    bad[~present] = float("nan")
    with torch.no_grad():
        assert torch.equal(model(x, present)["logits"], model(bad, present)["logits"])


# ---------------------------------------------------------------- shared blocks


@pytest.mark.parametrize("shape", [(1, 2, 21, 30, 17), (2, 2, 45, 33)])
def test_unet_block_levels_channels_and_odd_sizes(shape: tuple[int, ...]) -> None:
    from mmtumor.models.blocks import UNet

    torch.manual_seed(0)
    net = UNet(2, base_features=4, n_levels=4, max_features=12, spatial_dims=len(shape) - 2)
    assert net.features == [4, 8, 12, 12] and net.decoder_features == [4, 8, 12]
    feats = net(torch.randn(*shape))
    assert [f.shape[1] for f in feats] == [4, 8, 12]
    assert feats[0].shape[2:] == shape[2:]  # full resolution even for odd sizes
    for f, g in zip(feats, feats[1:], strict=False):  # each lower level halves (rounding up) the size
        assert all(b == (a + 1) // 2 for a, b in zip(f.shape[2:], g.shape[2:], strict=True))
