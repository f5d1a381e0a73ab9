"""The training loop: one GPU, several (torchrun + DDP), or a CPU for tiny runs.

Per epoch: poly learning rate, ``iters_per_epoch`` steps on augmented patches with the method's missing-modality
schedule, an atomic ``last.pt``; every ``val_every`` epochs a sliding-window validation (all modalities and each
single one) that may update ``best.pt``. Logs go to ``metrics.jsonl``/``metrics.csv`` and ``curves.png``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..device import pick_device
from ..errors import InputError, MmtumorError
from ..io.dataset import cases_from_manifest, find_cases, load_or_create_manifest
from ..modalities import MODALITIES, parse_subsets
from ..results import TrainResult
from .cache import CachedCase, build_cache, dataset_key
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .logs import plot_curves, progress_bar, write_logs
from .sampling import PatchStream, augment_batch
from .schedules import subsets_within


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> DistInfo:
    """Join the torchrun process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def poly_lr(lr0: float, epoch: int, max_epochs: int, power: float) -> float:
    """Poly decay (1 - epoch / max_epoch) ** power, epoch counted from 0."""
    return lr0 * (1 - epoch / max_epochs) ** power


def last_epoch_within(limit_s: float, elapsed_s: float, first_epoch: int, done_epoch: int, planned_last: int) -> int:
    """Last epoch that fits a wall-clock budget, from the mean time of the epochs run so far in this invocation.

    Always at least ``done_epoch`` (an epoch is never cut short) and at most ``planned_last``.
    """
    per_epoch = elapsed_s / max(done_epoch - first_epoch + 1, 1)
    more = int((limit_s - elapsed_s) // per_epoch) if per_epoch > 0 else planned_last
    return max(done_epoch, min(planned_last, done_epoch + max(more, 0)))


def build_training_model(cfg: TrainConfig):
    from ..models.grow import grown
    from ..models.registry import build_model

    if cfg.init_from:
        model = load_init(cfg.init_from, cfg.method)[0]
        if cfg.model_overrides:
            model = grown(model, cfg.method, cfg.model_overrides)  # a wider copy of the same function
    else:
        model = build_model(cfg.method, preset=cfg.preset, **cfg.model_overrides)
    if cfg.align:
        if cfg.align != "medmap":
            raise InputError(f"unknown alignment '{cfg.align}' (only 'medmap')")
        try:
            from ..models.medmap import with_alignment
        except ImportError:
            raise InputError("the MedMAP alignment add-on is not available in this installation") from None
        model = with_alignment(model, "medmap", weight=cfg.align_weight)
    return model


def _is_run(spec: str) -> bool:
    """A training run folder (with a checkpoint) or a ``.pt`` checkpoint, rather than exported weights."""
    path = Path(spec).expanduser()
    return (path.is_file() and path.suffix == ".pt") or (path.is_dir() and any(path.glob("*.pt")))


def load_init(spec: str, method: str) -> tuple[torch.nn.Module, float | None]:
    """The network ``--init-from`` names, for fine-tuning, and the voxel size (mm) it was trained at, or None.

    ``spec`` is exported weights (bundled NAME, folder, .safetensors, hf://; architecture from their JSON config) or a
    training run folder / ``.pt`` checkpoint (its saved model config). The weights must be of the method being trained:
    a fusion network's state cannot seed another method.
    """
    from ..models.registry import build_model, config_from_dict
    from ..weights import find_checkpoint, load_model, load_state, model_config_of, resolve
    from ..weights.locations import COMBINED, members_of

    if _is_run(spec):
        path = find_checkpoint(Path(spec).expanduser())
        ck = load_checkpoint(path)
        if not isinstance(ck, dict) or not isinstance(ck.get("model"), dict):
            raise InputError(f"{path} is not an mmtumor training checkpoint (no 'model' state)")
        src_method, config = model_config_of(ck)
        train_cfg = ck.get("train_config")
        train_cfg = json.loads(train_cfg) if isinstance(train_cfg, str) else (train_cfg or {})
        spacing = train_cfg.get("target_spacing")
    else:
        rw = resolve(spec)
        src_method, spacing = rw.method, rw.meta.get("spacing")
    if src_method in COMBINED:
        members = ", ".join(m.get("name", "?") for m in members_of(rw.meta))
        raise InputError(f"--init-from {spec}: combined weights ({src_method}) cannot initialise training; give one of "
                         f"their members ({members})")
    if src_method != method:
        raise InputError(f"--init-from {spec}: these are '{src_method}' weights, but the method is '{method}' "
                         f"(pass --method {src_method})")
    if _is_run(spec):
        model = build_model(method, config=config_from_dict(method, config))
        load_state(model, ck["model"], str(path))
    else:
        model, _ = load_model(rw, device="cpu")
    return model.train(), (float(spacing) if spacing else None)


def core_model(model: torch.nn.Module) -> torch.nn.Module:
    """The bare network: unwrap DDP and an alignment wrapper (which keeps its backbone as ``.backbone``)."""
    m = model.module if hasattr(model, "module") else model
    return m


def inference_model(model: torch.nn.Module) -> torch.nn.Module:
    m = core_model(model)
    return getattr(m, "backbone", m)


class Trainer:
    def __init__(self, cfg: TrainConfig, quiet: bool = False, resume: bool = False) -> None:
        self.cfg = cfg
        self.quiet = quiet
        self.resume = resume
        self.run_dir = Path(cfg.run_dir)
        from ..methods import get_method

        self.schedule = cfg.dropout_schedule or get_method(cfg.method).dropout_schedule
        self.subsets = parse_subsets(cfg.subsets) if cfg.subsets else None  # replaces the schedule (schedules.py)
        self.mixed_cases: list[CachedCase] = []  # cases of cfg.mix_data, filled by _prepare_data
        dev_kind = "cuda" if (cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())) else "cpu"
        self.dist = init_distributed(dev_kind)
        self.device = pick_device(cfg.device, self.dist.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)

    # ------------------------------------------------------------------ setup
    def _log(self, msg: str) -> None:
        if self.dist.main and not self.quiet:
            from rich.console import Console

            Console(stderr=True).print(msg, highlight=False)

    def _prepare_data(self) -> tuple[list[CachedCase], list[CachedCase]]:
        cfg = self.cfg
        manifest_path = self.run_dir / "manifest.json"
        manifest = (load_or_create_manifest(cfg.data_dir, manifest_path, seed=cfg.split_seed, split_file=cfg.split_file)
                    if self.dist.main else None)
        if self.dist.world > 1:
            import torch.distributed as dist

            box = [manifest]
            dist.broadcast_object_list(box, src=0)
            manifest = box[0]
        train_cases = cases_from_manifest(manifest, "train")
        val_cases = cases_from_manifest(manifest, "val")[: cfg.val_max_cases]
        if not train_cases:
            raise InputError(f"no training cases in {cfg.data_dir} after the split (need labelled cases)")
        home = Path(os.environ.get("MMTUMOR_HOME", Path.home() / ".cache" / "mmtumor"))
        key = dataset_key(train_cases + val_cases, cfg.target_spacing, cfg.soft_labels)
        cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else home / "cache" / key
        mixed = find_cases(cfg.mix_data, require_label=True) if cfg.mix_data else []  # all train, none validate
        folders = [(train_cases, cache_dir), (val_cases, cache_dir),
                   (mixed, home / "cache" / dataset_key(mixed, cfg.target_spacing, cfg.soft_labels))]

        def build() -> list[list]:
            return [build_cache(cases, folder, target_spacing=cfg.target_spacing, soft_labels=cfg.soft_labels)
                    if cases else [] for cases, folder in folders]

        if self.dist.main:  # rank 0 builds; the others wait, then open the finished cache
            self._log(f"preprocessing cache: {cache_dir}")
            train, val, self.mixed_cases = build()
        if self.dist.world > 1:
            import torch.distributed as dist

            dist.barrier()
        if not self.dist.main:
            train, val, self.mixed_cases = build()
        if mixed:
            self._log(f"mixing {len(mixed)} cases of {cfg.mix_data} into {cfg.mix_fraction:.0%} of the patches")
        if self.subsets:  # a case that cannot show any listed subset has nothing to teach this model
            train = [c for c in train if subsets_within(self.subsets, c.present)]
            self.mixed_cases = [c for c in self.mixed_cases if subsets_within(self.subsets, c.present)]
            if not train:
                raise InputError(f"no training case has all the modalities of any of --subsets {cfg.subsets}")
            self._log(f"training on the subsets {', '.join(s.name for s in self.subsets)} only")
        return train, val

    def _make_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        cfg = self.cfg
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self, model: torch.nn.Module, cases: list[CachedCase]) -> dict:
        """Dice WT/TC/ET with all available modalities and with each single one, averaged over cases: the inference
        core as ``segment --fast`` runs it (25 % window overlap, same post-processing) on the cached volumes."""
        from ..infer.core import InferenceSettings, predict
        from ..labels import labels_to_regions
        from ..metrics import dice

        net = inference_model(model)
        settings = InferenceSettings(patch=tuple(self.cfg.patch), overlap=0.25, amp=self.cfg.amp)
        spacing = (self.cfg.target_spacing or 1.0,) * 3
        results: dict[str, list[list[float]]] = {}
        for case in cases:
            if self.subsets:  # a protocol model is validated on the inputs it trains for
                settings_by_name = {s.name: np.array(s.mask) for s in subsets_within(self.subsets, case.present)}
            else:  # all modalities, and each single one
                settings_by_name = {"all": case.present}
                for m in MODALITIES:
                    if case.present[m.index]:
                        mask = np.zeros(4, bool)
                        mask[m.index] = True
                        settings_by_name[m.value] = mask
            ref = case.regions_binary()
            img = np.asarray(case.image, dtype=np.float32)
            brain = np.any(img != 0, axis=0)
            for name, present in settings_by_name.items():
                pred = predict(net, img, present, spacing, brain, settings, self.device, normalised=True)
                regions = labels_to_regions(pred.labels)
                results.setdefault(name, []).append([dice(regions[r], ref[r]) for r in range(3)])
        summary = {k: np.mean(v, axis=0).round(4).tolist() for k, v in results.items()}
        allscores = [s for v in summary.values() for s in v]
        summary["score"] = float(np.mean(allscores)) if allscores else 0.0
        return summary

    # ------------------------------------------------------------------ main loop
    def fit(self) -> TrainResult:
        """Set up (a failure here leaves no new run folder behind), then train."""
        fresh = self.dist.main and not self.run_dir.exists()
        try:
            state = self._setup()
        except BaseException:
            if fresh:
                import shutil

                shutil.rmtree(self.run_dir, ignore_errors=True)
            raise
        return self._fit(*state)

    def _setup(self):
        cfg = self.cfg
        torch.manual_seed(cfg.seed + self.dist.rank)
        np.random.seed(cfg.seed + self.dist.rank)
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for stale in self.run_dir.glob(".tmp-*"):  # a checkpoint or log write killed mid-way (SIGKILL)
                stale.unlink(missing_ok=True)
        train_cases, val_cases = self._prepare_data()

        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        model = build_training_model(cfg).to(self.device)
        optimizer = self._make_optimizer(model)
        use_fp16_scaler = cfg.amp and self.device.type == "cuda" and not torch.cuda.is_bf16_supported()
        scaler = torch.amp.GradScaler("cuda", enabled=use_fp16_scaler)
        start_epoch, best, history = 1, -1.0, []
        last_path = self.run_dir / "last.pt"
        if self.resume:
            if not last_path.exists():
                raise InputError(f"--resume: no checkpoint {last_path} to resume from")
            ck = load_checkpoint(last_path)
            if not isinstance(ck, dict) or "full_model" not in ck:
                raise InputError(f"--resume: {last_path} is not an mmtumor training checkpoint")
            model.load_state_dict(ck["full_model"])
            optimizer.load_state_dict(ck["optimizer"])
            scaler.load_state_dict(ck["scaler"])
            set_rng_state(ck["rng"])
            start_epoch = int(ck["epoch"]) + (1 if ck.get("epoch_complete", True) else 0)
            best = float(ck.get("best", -1.0))
            history = json.loads(ck.get("history", "[]"))
            self._log(f"resuming from {last_path} at epoch {start_epoch}")
        if self.dist.main:
            from ..io.atomic import write_json_atomic

            write_json_atomic(self.run_dir / "config.json", cfg.to_json())
        return train_cases, val_cases, model, optimizer, scaler, start_epoch, best, history

    def _fit(self, train_cases, val_cases, model, optimizer, scaler, start_epoch, best, history) -> dict:
        cfg = self.cfg
        last_path, best_path = self.run_dir / "last.pt", self.run_dir / "best.pt"
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ddp_model = DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                            find_unused_parameters=True)
        else:
            ddp_model = model
        stream = PatchStream(train_cases, cfg.patch, self.schedule, cfg.seed, rank=self.dist.rank, fg_fraction=cfg.fg_fraction,
                             mixed=self.mixed_cases, mix_fraction=cfg.mix_fraction, subsets=self.subsets)

        def checkpoint(epoch: int, complete: bool, path: Path = last_path) -> None:
            if not self.dist.main:
                return
            save_checkpoint(path, {
                "method": cfg.method, "config": _model_config_dict(inference_model(model)),
                "model": inference_model(model).state_dict(), "full_model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "rng": rng_state(),
                "epoch": epoch, "epoch_complete": complete, "best": best, "history": json.dumps(history),
                "train_config": json.dumps(cfg.to_json()),
            })

        epoch = start_epoch
        progress = self._progress()
        try:
            with progress:
                task = progress.add_task("training", total=(cfg.epochs - start_epoch + 1) * cfg.iters_per_epoch) if progress else None
                last_epoch = cfg.epochs if not cfg.stop_after else min(cfg.epochs, start_epoch + cfg.stop_after - 1)
                schedule_end = cfg.epochs  # the poly schedule reaches its end here (earlier under --time-limit)
                t_loop = time.perf_counter()
                epoch = start_epoch
                while epoch <= last_epoch:
                    record = self._train_epoch(epoch, ddp_model, model, optimizer, scaler, stream, progress, task, schedule_end)
                    if cfg.time_limit:
                        # the budget, not --stop-after, ends the schedule: a run stopped early to be resumed keeps
                        # the learning rate of the whole budget
                        schedule_end = self._sync_int(last_epoch_within(cfg.time_limit * 60, time.perf_counter() - t_loop,
                                                                        start_epoch, epoch, schedule_end))
                        fit_last = min(last_epoch, schedule_end)
                        if fit_last != last_epoch and progress:
                            progress.update(task, total=(fit_last - start_epoch + 1) * cfg.iters_per_epoch)
                        last_epoch = fit_last
                    final_of_budget = bool(cfg.time_limit) and epoch == last_epoch and last_epoch < cfg.epochs
                    if ((cfg.val_every and epoch % cfg.val_every == 0) or final_of_budget) and val_cases and self.dist.main:
                        record["val"] = self.validate(model, val_cases)
                        if record["val"]["score"] > best:
                            best = record["val"]["score"]
                            history.append(record)
                            checkpoint(epoch, True, best_path)
                        else:
                            history.append(record)
                    else:
                        history.append(record)
                    checkpoint(epoch, True)
                    self._write_logs(history)
                    if not self._interactive:
                        val = record.get("val", {})
                        self._log(f"epoch {epoch}/{cfg.epochs}: loss {record['loss'].get('total', float('nan')):.4f}, "
                                  f"{record['seconds']:.1f} s ({record['it_per_s']:.2f} it/s, data {record['data_fraction']:.0%})"
                                  + (f", val WT/TC/ET {val['all']}" if val.get("all") else ""))
                    if self.dist.world > 1:
                        import torch.distributed as dist

                        dist.barrier()
                    epoch += 1
                epoch -= 1
        except KeyboardInterrupt:
            # last.pt keeps the last completed epoch (mid-epoch weights are not saved), so --resume continues exactly
            # as an uninterrupted run would have
            self._write_logs(history)
            done = f"{last_path} holds epoch {len(history)}; continue with --resume" if history else "no epoch was completed"
            self._log(f"[red]interrupted in epoch {epoch}[/]: {done}")
            raise
        self.model = model
        if self.dist.main:
            if not best_path.exists():
                checkpoint(epoch, True, best_path)
            plot_curves(self.run_dir, history)
        return TrainResult(Path(self.run_dir), len(history), best, Path(best_path), Path(last_path), history,
                           self.dist.rank)

    def _sync_int(self, value: int) -> int:
        """Rank 0's value on every rank (so all ranks stop at the same epoch)."""
        if self.dist.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return int(box[0])

    def _train_epoch(self, epoch, ddp_model, model, optimizer, scaler, stream, progress, task, schedule_end: int) -> dict:
        cfg = self.cfg
        lr = poly_lr(cfg.lr, epoch - 1, schedule_end, cfg.poly_power)
        for g in optimizer.param_groups:
            g["lr"] = lr
        stream.epoch = epoch
        loader = torch.utils.data.DataLoader(stream, batch_size=cfg.batch, num_workers=cfg.workers,
                                             pin_memory=self.device.type == "cuda", persistent_workers=False)
        gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch * 101 + self.dist.rank)
        ddp_model.train()
        sums: dict[str, torch.Tensor | float] = {}
        bad = 0
        t0 = time.perf_counter()
        data_time = 0.0
        first_loss = None
        step = 0
        it = iter(loader)
        for _ in range(cfg.iters_per_epoch):
            td = time.perf_counter()
            x, y, present = next(it)
            x, y, present = (t.to(self.device, non_blocking=True) for t in (x, y, present))
            if cfg.augment != "none":
                x, y = augment_batch(x, y, present, gen, soft_labels=cfg.soft_labels, clinical=cfg.augment == "clinical")
            data_time += time.perf_counter() - td
            from ..infer.sliding import autocast_context

            with autocast_context(self.device, cfg.amp):
                out = ddp_model(x, present)
            terms = core_model(model).loss(out, y, present)
            loss = terms["total"]
            if not torch.isfinite(loss):
                bad += 1
                self._log(f"[yellow]warning:[/] non-finite loss in epoch {epoch}; step skipped")
                optimizer.zero_grad(set_to_none=True)
                if bad >= cfg.max_bad_steps:
                    raise MmtumorError(f"training diverged: {bad} non-finite losses in epoch {epoch} (try a lower --lr)")
                continue
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            # summed on the device: reading a loss back every step would stall a GPU once per term
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.detach().float()
            if first_loss is None:
                first_loss = float(loss.detach())
            step += 1
            if progress is not None:
                # the loss shown is read back (a device sync) only every 10 steps
                desc = {"description": f"epoch {epoch}/{cfg.epochs} loss {float(loss.detach()):.3f}"} if step % 10 == 1 else {}
                progress.update(task, advance=1, **desc)
        del it, loader
        n = max(cfg.iters_per_epoch - bad, 1)
        dt = time.perf_counter() - t0
        return {"epoch": epoch, "lr": lr, "loss": {k: float(v) / n for k, v in sums.items()}, "seconds": round(dt, 2),
                "it_per_s": round(cfg.iters_per_epoch / dt, 3), "data_fraction": round(data_time / dt, 3), "skipped": bad,
                "first_loss": first_loss}

    @property
    def _interactive(self) -> bool:
        import sys

        return sys.stderr.isatty()

    def _progress(self):
        return progress_bar(self.dist.main and not self.quiet and self._interactive)

    def _write_logs(self, history: list[dict]) -> None:
        if self.dist.main:
            write_logs(self.run_dir, history)


def _model_config_dict(model: torch.nn.Module) -> dict:
    import dataclasses

    cfg = getattr(model, "config", None)
    if cfg is None or not dataclasses.is_dataclass(cfg):
        return {}
    d = dataclasses.asdict(cfg)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def train(cfg: TrainConfig, quiet: bool = False, resume: bool = False) -> TrainResult:
    return Trainer(cfg, quiet=quiet, resume=resume).fit()
