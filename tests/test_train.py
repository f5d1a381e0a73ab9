"""Training: a real learning test on tiny phantoms, exact resume, DDP on 2 CPU processes, schedules, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mmtumor.cli import app
from mmtumor.errors import InputError
from mmtumor.train.config import resolve_config
from mmtumor.train.schedules import draw_present
from mmtumor.train.trainer import Trainer, last_epoch_within, poly_lr

from conftest import TRAIN_PHANTOM_SHAPE as SHAPE  # the `phantoms` fixture's grid


def _cfg(data: Path, run: Path, method: str = "a2fseg", **kw):
    base = dict(preset="tiny", epochs=2, iters_per_epoch=2, patch=(32, 32, 32), batch=2, workers=0, device="cpu",
                amp=False, val_every=0, cache_dir=str(run.parent / "cache"), seed=0)
    base.update(kw)
    return resolve_config(method, data, run, None, **base)


def test_schedules():
    rng = np.random.default_rng(0)
    allm = np.ones(4, bool)
    assert draw_present("a2fseg", 1, allm, rng).all()  # odd epoch: everything
    sizes = {int(draw_present("a2fseg", 2, allm, rng).sum()) for _ in range(200)}
    assert sizes == {1, 2, 3}
    codes = {tuple(draw_present("uniform", 1, allm, rng)) for _ in range(600)}
    assert len(codes) == 15
    avail = np.array([False, True, False, True])
    for sched in ("a2fseg", "uniform", "bernoulli", "none"):
        for ep in (1, 2):
            p = draw_present(sched, ep, avail, rng)
            assert p.any() and not (p & ~avail).any()
    with pytest.raises(InputError):
        draw_present("nope", 1, allm, rng)


def test_subsets_replace_the_schedule():
    """``--subsets``: every draw is one of the listed sets, each of them drawn, and never a modality a case lacks."""
    from mmtumor.modalities import parse_subsets

    rng = np.random.default_rng(0)
    listed = parse_subsets("T1c+FLAIR,T1c")
    codes = {tuple(draw_present("a2fseg", 1, np.ones(4, bool), rng, listed)) for _ in range(200)}
    assert codes == {(False, True, False, True), (False, True, False, False)}
    no_flair = np.array([True, True, True, False])
    assert {tuple(draw_present("uniform", 1, no_flair, rng, listed)) for _ in range(50)} == {(False, True, False, False)}
    with pytest.raises(InputError, match="none of the --subsets"):
        draw_present("uniform", 1, np.array([True, False, True, True]), rng, listed)


def test_subsets_option_is_checked_and_trains_and_validates_only_those(phantoms, tmp_path):
    with pytest.raises(InputError, match="invalid modality subset"):
        _cfg(phantoms, tmp_path / "bad", subsets="0000")
    with pytest.raises(InputError, match="unknown modality"):
        _cfg(phantoms, tmp_path / "bad", subsets="T1c+PD")
    torch.set_num_threads(1)
    cfg = _cfg(phantoms, tmp_path / "s", epochs=1, val_every=1, subsets="T1c+FLAIR, 0100")
    assert cfg.subsets == "0101,0100"
    res = Trainer(cfg, quiet=True).fit()
    assert set(res.history[-1]["val"]) == {"T1c+FLAIR", "T1c", "score"}  # validated on the protocol's inputs only
    assert json.loads((tmp_path / "s" / "config.json").read_text())["subsets"] == "0101,0100"


def test_poly_lr_and_paper_defaults(tmp_path):
    assert poly_lr(0.01, 0, 10, 0.9) == pytest.approx(0.01)
    assert poly_lr(0.01, 5, 10, 0.9) == pytest.approx(0.01 * 0.5**0.9)
    c = resolve_config("a2fseg", tmp_path, tmp_path / "r")
    assert (c.optimizer, c.lr, c.patch) == ("adam", 1e-2, (128, 128, 128))
    c = resolve_config("robustseg", tmp_path, tmp_path / "r")
    assert (c.lr, c.patch, c.batch) == (1e-4, (80, 80, 80), 1)
    c = resolve_config("mmformer", tmp_path, tmp_path / "r", lr=5e-4)
    assert (c.lr, c.weight_decay) == (5e-4, 1e-4)
    with pytest.raises(InputError):
        resolve_config("a2fseg", tmp_path, tmp_path / "r", optimizer="rmsprop")


@pytest.mark.parametrize("method,epochs,min_dice,soft", [("a2fseg", 8, 0.2, False), ("unet", 6, 0.2, False),
                                                         ("unet", 6, 0.2, True)])
def test_tiny_model_learns_whole_tumour(phantoms, tmp_path, method, epochs, min_dice, soft):
    """A real learning test: held-out phantom Dice (mean of WT, TC, ET, validated as segment predicts, islands
    removed) must rise by 0.1 and clearly beat chance after a short CPU run (also with soft, partial-volume targets on
    a coarser 4 mm grid).

    Chance level: the untrained networks score about 0.2 WT (the brain-masked all-tumour guess) and 0.02 TC/ET here,
    a mean of about 0.09.
    """
    from mmtumor.train.trainer import build_training_model

    run = tmp_path / "run"
    grid = {"soft_labels": True, "target_spacing": 4.0, "patch": (24, 24, 24)} if soft else {"patch": (32, 32, 32)}
    cfg = _cfg(phantoms, run, method, epochs=epochs, iters_per_epoch=12, lr=1e-2, optimizer="adam", val_every=epochs,
               fg_fraction=0.8, dropout_schedule="none", **grid)
    trainer = Trainer(cfg, quiet=True)
    _, val_cases = trainer._prepare_data()
    torch.manual_seed(cfg.seed)  # the same initial weights fit() starts from
    before = float(np.mean(trainer.validate(build_training_model(cfg), val_cases)["all"]))
    result = trainer.fit()
    first, last = result.history[0]["loss"]["total"], result.history[-1]["loss"]["total"]
    assert last < first
    after = float(np.mean(result.history[-1]["val"]["all"]))  # WT/TC/ET on the held-out validation phantom(s)
    assert after > min_dice and after > before + 0.1, (before, result.history[-1]["val"])
    for f in ("last.pt", "best.pt", "config.json", "metrics.jsonl", "metrics.csv", "curves.png", "manifest.json"):
        assert (run / f).exists(), f
    assert (result.run_dir, result.best, result.last, result.epochs) == (run, run / "best.pt", run / "last.pt", epochs)


def test_resume_gives_identical_next_step(phantoms, tmp_path):
    torch.set_num_threads(1)
    full = Trainer(_cfg(phantoms, tmp_path / "a"), quiet=True).fit()
    Trainer(_cfg(phantoms, tmp_path / "b", stop_after=1), quiet=True).fit()
    ck = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert ck["epoch"] == 1
    resumed = Trainer(_cfg(phantoms, tmp_path / "b"), quiet=True, resume=True).fit()
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    assert resumed.history[1]["first_loss"] == pytest.approx(full.history[1]["first_loss"], abs=1e-6)
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_last_epoch_within_budget():
    # 10 s per epoch so far (2 epochs in 20 s), 60 s budget: 4 more fit
    assert last_epoch_within(60, 20, 1, 2, 100) == 6
    assert last_epoch_within(60, 20, 1, 2, 4) == 4  # never past the planned end
    assert last_epoch_within(60, 70, 1, 2, 100) == 2  # over budget: stop after the epoch just done
    assert last_epoch_within(60, 20, 5, 6, 100) == 10  # a resumed run times only this invocation's epochs


def test_time_limit_must_be_positive(phantoms, tmp_path):
    with pytest.raises(InputError, match="time-limit"):
        _cfg(phantoms, tmp_path / "t", time_limit=0)


def test_time_limit_stops_early_and_validates_the_last_epoch(phantoms, tmp_path):
    """A budget far below one epoch: exactly one epoch runs, at the full rate, and it is validated and kept as best."""
    torch.set_num_threads(1)
    res = Trainer(_cfg(phantoms, tmp_path / "t", epochs=50, val_every=0, time_limit=1e-4), quiet=True).fit()
    assert [r["epoch"] for r in res.history] == [1]
    assert res.history[0]["lr"] == pytest.approx(_cfg(phantoms, tmp_path / "t").lr)
    assert "val" in res.history[0]
    assert torch.load(tmp_path / "t" / "best.pt", weights_only=True)["epoch"] == 1


def _ddp_worker(rank: int, world: int, port: int, data: str, run: str, out: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    cfg = _cfg(Path(data), Path(run), "unet", epochs=1, iters_per_epoch=1)
    trainer = Trainer(cfg, quiet=True)
    trainer.fit()
    flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    torch.save(flat, Path(out) / f"rank{rank}.pt")
    import torch.distributed as dist

    dist.destroy_process_group()


def test_ddp_two_cpu_processes_agree(phantoms, tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(phantoms), str(tmp_path / "run"), str(tmp_path)), nprocs=2, join=True)
    w0, w1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert torch.equal(w0, w1)
    init = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert init["epoch"] == 1


def test_cli_bad_data_folders(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["train", str(tmp_path / "missing"), "-o", str(tmp_path / "r")])
    assert r.exit_code == 1 and "not found" in r.output and "Traceback" not in r.output
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["train", str(tmp_path / "empty"), "-o", str(tmp_path / "r")])
    assert r.exit_code == 1 and "no labelled cases" in r.output
    r = runner.invoke(app, ["train", str(tmp_path / "empty"), "--method", "nope", "-o", str(tmp_path / "r")])
    assert r.exit_code == 1


def test_cli_train_end_to_end_and_export(phantoms, tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", str(phantoms), "--method", "unet", "-o", str(run), "--preset", "tiny", "--epochs", "1",
                            "--iters-per-epoch", "1", "--patch", "32", "32", "32", "--device", "cpu", "--workers", "0",
                            "--no-amp", "--val-every", "1", "--augment", "clinical", "-q"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["method"] == "unet" and cfg["patch"] == [32, 32, 32] and cfg["augment"] == "clinical"
    r = runner.invoke(app, ["weights", "export", str(run), "-o", str(tmp_path / "w"), "--name", "mini"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "w" / "mini.safetensors").exists()


def test_cli_fine_tune_from_exported_weights(phantoms, tmp_path):
    """--init-from starts from the given weights (architecture, tensors and voxel size), and refuses a wrong method."""
    from safetensors.torch import load_file

    runner = CliRunner()
    common = ["--preset", "tiny", "--epochs", "1", "--iters-per-epoch", "1", "--patch", "32", "32", "32", "--device", "cpu",
              "--workers", "0", "--no-amp", "--val-every", "0", "-q"]
    r = runner.invoke(app, ["train", str(phantoms), "--method", "unet", "-o", str(tmp_path / "base"), "--target-spacing", "1",
                            *common])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["weights", "export", str(tmp_path / "base"), "-o", str(tmp_path / "w"), "--name", "mini"])
    assert r.exit_code == 0, r.output
    start = load_file(str(tmp_path / "w" / "mini.safetensors"))

    # A vanishing learning rate: the fine-tuned network must still be the exported one, tensor for tensor.
    r = runner.invoke(app, ["train", str(phantoms), "--method", "unet", "-o", str(tmp_path / "ft"), "--init-from",
                            str(tmp_path / "w"), "--lr", "1e-12", *common])
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert cfg["init_from"] == str(tmp_path / "w") and cfg["target_spacing"] == 1.0
    tuned = torch.load(tmp_path / "ft" / "last.pt", weights_only=True)["model"]
    assert set(tuned) == set(start)
    assert all(torch.allclose(tuned[k].float(), start[k].float(), atol=1e-6) for k in start)

    # Control: the same run without --init-from does not end at those tensors (so the check above can fail).
    r = runner.invoke(app, ["train", str(phantoms), "--method", "unet", "-o", str(tmp_path / "fresh"), "--seed", "1",
                            "--lr", "1e-12", "--target-spacing", "1", *common])
    assert r.exit_code == 0, r.output
    other = torch.load(tmp_path / "fresh" / "last.pt", weights_only=True)["model"]
    assert any(not torch.allclose(other[k].float(), start[k].float(), atol=1e-4) for k in start if start[k].is_floating_point())

    r = runner.invoke(app, ["train", str(phantoms), "--method", "hemis", "-o", str(tmp_path / "bad"), "--init-from",
                            str(tmp_path / "w"), *common])
    assert r.exit_code == 1 and "--method unet" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "bad" / "last.pt").exists()
    r = runner.invoke(app, ["train", str(phantoms), "--method", "unet", "-o", str(tmp_path / "bad2"), "--init-from",
                            str(tmp_path / "nowhere"), *common])
    assert r.exit_code == 1 and "Traceback" not in r.output

    # A training run folder works too (its best.pt, saved model config and voxel size).
    r = runner.invoke(app, ["train", str(phantoms), "--method", "unet", "-o", str(tmp_path / "ft2"), "--init-from",
                            str(tmp_path / "base"), "--lr", "1e-12", *common])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "ft2" / "config.json").read_text())["target_spacing"] == 1.0
    tuned2 = torch.load(tmp_path / "ft2" / "last.pt", weights_only=True)["model"]
    base_best = torch.load(tmp_path / "base" / "best.pt", weights_only=True)["model"]
    assert all(torch.allclose(tuned2[k].float(), base_best[k].float(), atol=1e-6) for k in base_best)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "best.pt").write_bytes(b"not a checkpoint")
    r = runner.invoke(app, ["train", str(phantoms), "--method", "unet", "-o", str(tmp_path / "bad3"), "--init-from",
                            str(tmp_path / "junk"), *common])
    assert r.exit_code == 1 and "cannot read checkpoint" in r.output and "Traceback" not in r.output


def test_soft_label_cache_keeps_partial_volume(phantoms, tmp_path):
    """At a coarser training grid, soft labels keep each voxel's region fraction; their 0.5 cut is the binary cache,
    and resampling augmentation keeps them soft (the binary path stays binary)."""
    from mmtumor.io.dataset import find_cases
    from mmtumor.train.cache import build_cache
    from mmtumor.train.sampling import augment_batch, crop_patch

    cases = find_cases(phantoms, require_label=True)[:2]
    hard = build_cache(cases, tmp_path / "hard", target_spacing=2.0)
    soft = build_cache(cases, tmp_path / "soft", target_spacing=2.0, soft_labels=True)
    for h, s in zip(hard, soft, strict=True):
        assert (h.label_scale, s.label_scale) == (1, 255)
        frac = s.regions_float()
        assert frac.min() >= 0 and frac.max() <= 1
        partial = (frac > 0.02) & (frac < 0.98)
        assert partial[0].sum() > 0.1 * (frac[0] > 0.5).sum()  # tumour borders are partial at 2 mm
        # the soft cache's 0.5 cut is the binary cache (up to the rounding of fractions at exactly 0.5)
        assert np.mean(s.regions_binary() != h.regions_binary()) < 1e-3
        assert np.array_equal(h.regions_float(), h.regions_binary().astype(np.float32))
        assert s.regions_binary()[0][tuple(s.fg_index.T)].all()
        # nesting holds for fractions too: ET <= TC <= WT voxel by voxel
        assert (frac[2] <= frac[1] + 1e-6).all() and (frac[1] <= frac[0] + 1e-6).all()
    with pytest.raises(InputError, match="soft"):
        build_cache(cases, tmp_path / "hard", target_spacing=2.0, soft_labels=True)
    # soft targets without a coarser grid would silently be binary: a one-line error instead
    r = CliRunner().invoke(app, ["train", str(phantoms), "--method", "unet", "-o", str(tmp_path / "run"), "--soft-labels",
                                 "--device", "cpu", "-q"])
    assert r.exit_code == 1 and "--target-spacing" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "run" / "last.pt").exists()

    rng = np.random.default_rng(0)
    x, y = crop_patch(soft[0], (24, 24, 16), rng, foreground=True)
    xb, yb = torch.from_numpy(x)[None].repeat(2, 1, 1, 1, 1), torch.from_numpy(y)[None].repeat(2, 1, 1, 1, 1)
    present = torch.ones(2, 4, dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)
    _, ys = augment_batch(xb, yb, present, gen, p_spatial=1.0, soft_labels=True)
    assert ((ys > 0.02) & (ys < 0.98)).any()
    gen = torch.Generator().manual_seed(0)
    _, yh = augment_batch(xb, yb, present, gen, p_spatial=1.0)
    assert set(torch.unique(yh).tolist()) <= {0.0, 1.0}


def test_clinical_augmentation_degrades_like_a_hospital_scan_and_keeps_the_contract(phantoms, tmp_path):
    """Thick slices blur along one axis only, low resolution along all three; clinical augmentation keeps absent
    modalities and the background at zero, labels binary, and is reproducible for a seed; old boolean configs load."""
    from mmtumor.train.sampling import augment_batch, degrade_resolution

    noise = torch.randn(1, 32, 32, 32, generator=torch.Generator().manual_seed(1))

    def roughness(v, axis):  # mean squared difference of neighbours along an axis
        return float(torch.diff(v, dim=axis).pow(2).mean())

    thick = degrade_resolution(noise, 0, 3.0)  # the first spatial axis: dim 1 of this [1, D, H, W] tensor
    assert thick.shape == noise.shape
    # averaging lowers the noise everywhere; only the thick axis loses its detail relative to the in-plane axes
    assert roughness(thick, 1) < 0.3 * roughness(thick, 2) and roughness(thick, 1) < 0.3 * roughness(thick, 3)
    assert 0.8 < roughness(thick, 2) / roughness(thick, 3) < 1.25
    low = degrade_resolution(noise, None, 2.0)
    assert all(roughness(low, a) < 0.5 * roughness(noise, a) for a in (1, 2, 3))
    assert 0.7 < roughness(low, 1) / roughness(low, 3) < 1.4
    assert torch.allclose(degrade_resolution(torch.full((1, 16, 16, 16), 3.0), 0, 2.5), torch.tensor(3.0))

    brain = torch.zeros(4, 1, 32, 32, 32)
    brain[:, :, 4:28, 4:28, 4:28] = 1
    x = (torch.rand(4, 4, 32, 32, 32, generator=torch.Generator().manual_seed(2)) + 0.5) * brain
    y = (torch.rand(4, 3, 32, 32, 32, generator=torch.Generator().manual_seed(3)) > 0.7).float() * brain
    present = torch.tensor([[1, 1, 1, 1], [0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 1, 1]], dtype=torch.bool)
    x = x * present.view(4, 4, 1, 1, 1)

    def run(seed, clinical):
        return augment_batch(x.clone(), y.clone(), present, torch.Generator().manual_seed(seed), p_spatial=1.0,
                             clinical=clinical)

    xa, ya = run(5, True)
    assert torch.equal(xa, run(5, True)[0]) and not torch.equal(xa, run(6, True)[0])
    assert not torch.allclose(xa, run(5, False)[0])
    assert (xa[~present] == 0).all() and set(torch.unique(ya).tolist()) <= {0.0, 1.0}
    assert torch.isfinite(xa).all()
    # the acquisition step alone (bias field, thick slices, low resolution) never writes outside the brain
    from mmtumor.train.sampling import _clinical_acquisition

    gen = torch.Generator().manual_seed(7)
    out = _clinical_acquisition(x.clone(), brain, lambda *shape: torch.rand(*shape, generator=gen), gen)
    assert (out * (1 - brain) == 0).all() and (out[~present] == 0).all()
    changed = (out - x).abs().amax(dim=(2, 3, 4)) > 1e-3
    assert changed.any() and not changed.all()  # each modality is degraded with probability 0.3 per effect

    cfg = _cfg(phantoms, tmp_path / "r", augment=True)
    assert cfg.augment == "standard" and _cfg(phantoms, tmp_path / "r", augment=False).augment == "none"
    with pytest.raises(InputError, match="clinical"):
        _cfg(phantoms, tmp_path / "r", augment="hospital")


def test_mixed_data_gives_its_share_of_patches_and_never_validates(phantoms, tmp_path, monkeypatch):
    """--mix-data (phantoms beside real scans): its cases give --mix-fraction of the patches, train only, and are
    named in config.json; the training folder itself or a fraction outside [0, 1] is a one-line error."""
    from mmtumor.synth import write_dataset
    from mmtumor.train.cache import CachedCase
    from mmtumor.train.sampling import PatchStream

    def case(value: float) -> CachedCase:
        return CachedCase(f"c{value}", np.full((4, 16, 16, 16), value, np.float16), np.zeros((3, 16, 16, 16), np.uint8),
                          np.ones(4, bool), np.zeros((0, 3), np.int32))

    def shares(fraction: float) -> float:
        stream = iter(PatchStream([case(1.0)], (8, 8, 8), "none", seed=0, mixed=[case(2.0)], mix_fraction=fraction))
        return float(np.mean([float(next(stream)[0].max()) == 2.0 for _ in range(400)]))

    assert shares(0.0) == 0.0 and shares(1.0) == 1.0 and 0.18 < shares(0.25) < 0.32

    extra = tmp_path / "extra"
    write_dataset(extra, 2, seed=99, shape=SHAPE)
    for folder in list(extra.iterdir()):  # ids of their own (the generator names every case Synth_NNNNN)
        for f in folder.iterdir():
            f.rename(folder / f.name.replace("Synth", "Extra"))
        folder.rename(extra / folder.name.replace("Synth", "Extra"))
    monkeypatch.setenv("MMTUMOR_HOME", str(tmp_path / "home"))
    run = tmp_path / "run"
    common = ["--method", "unet", "--preset", "tiny", "--epochs", "1", "--iters-per-epoch", "1", "--patch", "32", "32",
              "32", "--device", "cpu", "--workers", "0", "--no-amp", "--val-every", "0", "-q"]
    r = CliRunner().invoke(app, ["train", str(phantoms), "-o", str(run), "--mix-data", str(extra), "--mix-fraction",
                                 "0.5", *common[:-1]])
    assert r.exit_code == 0, r.output
    assert "mixing 2 cases" in r.output.replace("\n", " ")
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["mix_data"] == str(extra) and cfg["mix_fraction"] == 0.5
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["root"] == str(phantoms) and not any(c.startswith("Extra") for c in manifest["cases"])
    caches = sorted((tmp_path / "home" / "cache").iterdir())  # the training folder's cache and the mixed cases' own
    assert len(caches) == 2 and sum(any(f.name.startswith("Extra") for f in c.iterdir()) for c in caches) == 1
    for bad, message in ((["--mix-data", str(phantoms)], "training folder itself"),
                         (["--mix-data", str(extra), "--mix-fraction", "1.5"], "between 0 and 1"),
                         (["--mix-data", str(tmp_path / "none")], "found")):
        r = CliRunner().invoke(app, ["train", str(phantoms), "-o", str(tmp_path / "bad"), *bad, *common])
        assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output, r.output
        assert not (tmp_path / "bad").exists()


def test_stop_after_pauses_a_time_limited_run_without_ending_its_schedule(phantoms, tmp_path):
    """--stop-after is a pause (continue with --resume): under a generous --time-limit the learning rate of the
    epochs run follows the poly schedule of all --epochs, not one that ends at the stop."""
    torch.set_num_threads(1)
    cfg = _cfg(phantoms, tmp_path / "s", epochs=6, stop_after=2, time_limit=1000)
    res = Trainer(cfg, quiet=True).fit()
    assert [r["epoch"] for r in res.history] == [1, 2]
    assert res.history[1]["lr"] == pytest.approx(poly_lr(cfg.lr, 1, 6, cfg.poly_power))
