"""A training checkpoint -> the weights format (safetensors + JSON config + model card + manifest entry), and the one
documented way to change a shipped model's metadata afterwards (``update_meta``)."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from pathlib import Path

from ..errors import InputError, ReadError
from ..io.atomic import write_bytes_atomic, write_json_atomic
from .cards import render_card, summary
from .loading import load_state
from .locations import FORMAT, INTENDED_USE, MANIFEST, NAME_RE, REGIONS, REPO_WEIGHTS
from .manifest import ResolvedWeights, from_folder, pick_entry, read_manifest, sha256_file
from .provenance import training_cases_of_run


_CKPT_NAMES = ("best.pt", "model_best.pt", "checkpoint_best.pt", "last.pt", "checkpoint_last.pt", "checkpoint.pt")


def find_checkpoint(run: Path) -> Path:
    if run.is_file():
        return run
    if not run.is_dir():
        raise InputError(f"run folder not found: {run}")
    for folder in (run, run / "checkpoints"):
        for name in _CKPT_NAMES:
            if (folder / name).is_file():
                return folder / name
    found = sorted(list(run.glob("*.pt")) + list(run.glob("checkpoints/*.pt")), key=lambda p: p.stat().st_mtime)
    if not found:
        raise InputError(f"no checkpoint (*.pt) in {run}")
    return found[-1]


def model_config_of(ck: dict) -> tuple[str, dict]:
    cfg = ck.get("model_config") or ck.get("config") or {}
    if isinstance(cfg, dict) and isinstance(cfg.get("model"), dict):
        cfg = cfg["model"]
    method = ck.get("method") or (ck.get("config") or {}).get("method") or cfg.get("method")
    if not method:
        raise InputError("the checkpoint does not name its method ('method' key)")
    return str(method), {k: v for k, v in dict(cfg).items() if k != "method"}


def _clean_state(state: dict, dtype: str | None) -> dict:
    import torch

    cast = {None: None, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in cast:
        raise InputError(f"unsupported dtype '{dtype}' (float32, float16 or bfloat16)")
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise InputError(f"checkpoint entry '{key}' is not a tensor")
        for prefix in ("module.", "_orig_mod."):  # DDP / torch.compile wrappers
            while key.startswith(prefix):
                key = key[len(prefix):]
        t = value.detach().to("cpu")
        if cast[dtype] is not None and t.is_floating_point():
            t = t.to(cast[dtype])
        out[key] = t.contiguous().clone()  # clone: safetensors refuses shared storage
    return out


def jsonable(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def _base_meta(name: str, method: str, config: dict, extra: dict) -> dict:
    from ..version import __version__

    meta = {
        "format": FORMAT, "name": name, "version": "1", "method": method, "config": config,
        "modalities": ["T1", "T1c", "T2", "FLAIR"], "patch_size": None, "normalization": None,
        "label_regions": list(REGIONS), "output": "sigmoid", "label_scheme": "brats2021",
        "training_data": None, "training": {}, "metrics": {}, "intended_use": INTENDED_USE,
        "description": "", "mmtumor_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }
    for key, value in extra.items():
        if key in ("format", "name", "method", "config"):
            continue
        meta[key] = jsonable(value)
    return meta


def read_checkpoint(path: Path | str) -> dict:
    """A training checkpoint (tensors and plain containers only: ``weights_only=True``, never pickled objects), or one
    line saying why not: pickled objects, a truncated file, not a checkpoint at all."""
    import torch

    try:
        ck = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is a user error here
        text = str(exc)
        if "weights_only" in text or "Unsupported global" in text:
            why = ("it holds pickled Python objects, which mmtumor never loads: save the model's state_dict "
                   "(tensors only) instead")
        elif "zip" in text.lower() or isinstance(exc, EOFError):
            why = "the file is truncated or is not a PyTorch checkpoint"
        else:
            why = text.splitlines()[0] if text else type(exc).__name__
        raise ReadError(f"cannot read checkpoint {path}: {why}") from None
    if not isinstance(ck, dict):
        raise ReadError(f"{path} is not a checkpoint dictionary")
    return ck


def export_run(run_dir: Path | str, out_dir: Path | str, name: str | None = None, *, meta: dict | None = None,
               dtype: str | None = None, default: bool = False) -> ResolvedWeights:
    """Turn a training checkpoint into the weights format: ``NAME.safetensors`` + ``NAME.json`` + ``NAME.md``
    (model card) in ``out_dir``, with the manifest updated (SHA-256, size). Returns the verified result.

    The checkpoint (``run_dir`` itself, or ``best.pt``/``last.pt``/newest ``*.pt`` in it) is our own trainer's
    ``{"model": state_dict, "method": str, "config": dict, "meta": dict?}``, read with ``weights_only=True``.
    ``meta`` (metrics, training data, patch size ...) overrides what the checkpoint carries.
    """

    run = Path(run_dir)
    ckpt = find_checkpoint(run)
    ck = read_checkpoint(ckpt)
    state = ck.get("model") if isinstance(ck.get("model"), dict) else ck.get("state_dict")
    if not isinstance(state, dict) or not state:
        raise ReadError(f"{ckpt} holds no model state_dict under 'model'")
    method, cfg = model_config_of(ck)
    name = name or (run.stem if run.is_file() else run.name)
    if not NAME_RE.match(name):
        raise InputError(f"invalid model name '{name}': letters, digits, '.', '_' and '-' only")
    tensors = _clean_state(state, dtype)

    from ..models.registry import build_model, config_from_dict

    config = config_from_dict(method, cfg)
    model = build_model(method, config=config)
    load_state(model, tensors, str(ckpt))  # refuse exports that could never be loaded
    extra = _meta_from_checkpoint(ck, ckpt)
    seen = training_cases_of_run(ckpt.parent)  # lets benchmark refuse to score the model on its own training cases
    if seen:
        extra["training_cases"] = seen
    extra.update(meta or {})
    full = _base_meta(name, method, jsonable(dataclasses.asdict(config)), extra)
    return write_model(Path(out_dir), name, tensors, full, default=default)


_RECIPE_KEYS = ("preset", "epochs", "iters_per_epoch", "patch", "batch", "lr", "optimizer", "amp", "align",
                "dropout_schedule", "augment", "seed", "data_dir", "target_spacing", "time_limit")


def _json_field(value):
    """Checkpoint fields our trainer stores as JSON text (weights_only loading keeps them plain); None if unparsable."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _meta_from_checkpoint(ck: dict, ckpt: Path) -> dict:
    """What our trainer's checkpoint tells about the run: recipe (from ``train_config``), epoch, last validation."""
    extra = dict(ck.get("meta") or {})
    training = dict(extra.get("training") or {})
    train_cfg = _json_field(ck.get("train_config"))
    if isinstance(train_cfg, dict):
        training.update({k: jsonable(train_cfg[k]) for k in _RECIPE_KEYS if k in train_cfg})
        if train_cfg.get("patch") and not extra.get("patch_size"):
            extra["patch_size"] = list(train_cfg["patch"])
        if train_cfg.get("target_spacing") and not extra.get("spacing"):
            extra["spacing"] = float(train_cfg["target_spacing"])
    training.setdefault("checkpoint", ckpt.name)
    if "epoch" in ck:
        training.setdefault("epoch", jsonable(ck["epoch"]))
    history = _json_field(ck.get("history"))
    if isinstance(history, list):
        vals = [h["val"] for h in history if isinstance(h, dict) and isinstance(h.get("val"), dict)]
        if vals:
            training.setdefault("last_validation", jsonable(vals[-1]))
    extra["training"] = training
    return extra


def write_model(out: Path, name: str, tensors: dict, meta: dict, default: bool = False) -> ResolvedWeights:
    from safetensors.torch import save

    out.mkdir(parents=True, exist_ok=True)
    wfile, cfile, card = f"{name}.safetensors", f"{name}.json", f"{name}.md"
    write_bytes_atomic(out / wfile, save(tensors, metadata={"format": "pt", "mmtumor_format": FORMAT,
                                                        "name": name, "method": meta["method"]}))
    write_json_atomic(out / cfile, meta)
    write_bytes_atomic(out / card, render_card(meta).encode())
    _update_manifest(out, name, meta, [wfile, cfile], card, default)
    return from_folder(out, name, "local", str(out / wfile))


def _update_manifest(out: Path, name: str, meta: dict, files: list[str], card: str | None, default: bool) -> None:
    manifest = read_manifest(out) if (out / MANIFEST).is_file() else {"format": FORMAT, "models": []}
    bundled = out.resolve() == REPO_WEIGHTS.resolve()
    entry = {
        "name": name, "method": meta["method"],
        "files": {f: {"sha256": sha256_file(out / f), "size": (out / f).stat().st_size} for f in files},
        "size": sum((out / f).stat().st_size for f in files),
        "modalities": meta.get("modalities"), "source": "bundled" if bundled else "export",
        "card": card, "summary": summary(meta),
    }
    names = [m["name"] for m in manifest["models"]]
    if name in names:  # replaced in place: re-exporting or re-scoring a model keeps the listing order
        manifest["models"][names.index(name)] = entry
    else:
        manifest["models"].append(entry)
    if default or not manifest.get("default"):
        manifest["default"] = name if default or len(manifest["models"]) == 1 else manifest.get("default")
    if manifest.get("default") is None:
        manifest.pop("default", None)
    write_json_atomic(out / MANIFEST, manifest)


def update_meta(folder: Path | str, name: str, **fields) -> ResolvedWeights:
    """Change a model's JSON (e.g. ``metrics=...`` after a benchmark), regenerate its card and the manifest sums."""
    folder = Path(folder)
    rw = from_folder(folder, name, "local", str(folder))
    meta = dict(rw.meta)
    for key, value in fields.items():
        if key in ("format", "name", "method", "config"):
            raise InputError(f"'{key}' cannot be changed after export")
        meta[key] = jsonable(value)
    write_json_atomic(rw.config_path, meta)
    card = f"{name}.md"
    write_bytes_atomic(folder / card, render_card(meta).encode())
    manifest = read_manifest(folder)
    entry = pick_entry(manifest, name, str(folder))
    _update_manifest(folder, name, meta, list(entry["files"]), entry.get("card") or card, manifest.get("default") == name)
    return from_folder(folder, name, "local", str(folder))
