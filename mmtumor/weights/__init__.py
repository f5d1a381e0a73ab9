"""Model weights: bundled defaults, Hugging Face Hub downloads, cache, SHA-256 checks, export and model cards.

Weights are the one thing users fetch from the internet and feed to a network, so they are stored as
safetensors only (never pickle), checked against the SHA-256 sums of a ``manifest.json`` before use, and cached
in ``$MMTUMOR_HOME`` so that ``HF_HUB_OFFLINE=1`` works once a model has been pulled. The format is described in
``docs/weights.md``. Environment variables are read when a function runs, never at import time, and torch /
huggingface_hub are imported inside the functions that need them.

The package by concern: ``locations`` (folders, cache, Hub settings), ``manifest`` (SHA-256 checks), ``hub``
(download cache, push), ``loading`` (resolve, list, verify, load), ``export`` (checkpoint -> weights, metadata
updates), ``ensemble`` (several exports -> one ensemble or router), ``cards`` (model cards). The names below are the public API.
"""

from ..errors import ChecksumError, OfflineError, WeightsError
from .cards import render_card, summary
from .ensemble import ensemble_weights, route_weights
from .export import export_run, find_checkpoint, model_config_of, read_checkpoint, update_meta
from .hub import parse_hub_spec, push
from .loading import default_model_name, expected_dice, list_models, load_model, load_state, resolve, verify
from .locations import FORMAT, INTENDED_USE, MANIFEST, REGIONS, bundled_dir, hub_cache_dir, mmtumor_home
from .manifest import FileCheck, ModelInfo, ResolvedWeights, read_manifest, sha256_file

__all__ = [
    "ChecksumError", "FORMAT", "FileCheck", "INTENDED_USE", "MANIFEST", "ModelInfo", "OfflineError", "REGIONS",
    "ResolvedWeights", "WeightsError", "bundled_dir", "default_model_name", "ensemble_weights", "expected_dice", "export_run",
    "find_checkpoint", "hub_cache_dir", "list_models", "load_model", "load_state", "mmtumor_home", "model_config_of",
    "parse_hub_spec", "push", "read_checkpoint", "read_manifest", "render_card", "resolve", "route_weights", "sha256_file", "summary", "update_meta", "verify",
]
