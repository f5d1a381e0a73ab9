"""The torch-free method registry (``mmtumor.methods``) is the one source: the model registry, training defaults,
schedules and the CLI's choices all agree with it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mmtumor.errors import InputError
from mmtumor.methods import DEFAULT_METHOD, METHODS, PRESETS, default_preset, get_method, method_names


def test_every_method_is_built_by_the_model_registry_and_the_reverse():
    from mmtumor.models.registry import methods

    registered = {spec.name: spec for spec in methods()}
    assert set(registered) == set(METHODS)
    for name, spec in registered.items():
        assert set(spec.presets) == set(METHODS[name].presets) >= set(PRESETS), name
        assert spec.builder.__module__ == f"mmtumor.models.{METHODS[name].module}"


def test_training_defaults_and_schedules_come_from_the_registry(tmp_path):
    from mmtumor.train.config import resolve_config
    from mmtumor.train.schedules import SCHEDULES

    for m in METHODS.values():
        cfg = resolve_config(m.name, tmp_path, tmp_path / "r")
        assert (cfg.optimizer, cfg.lr, cfg.patch, cfg.batch, cfg.weight_decay) == (
            m.optimizer, m.lr, m.patch, m.batch, m.weight_decay)
        assert m.dropout_schedule in SCHEDULES
    assert default_preset(True) == "paper" and default_preset(False) == "tiny" == PRESETS[0]
    with pytest.raises(InputError, match="unknown method 'nope' \\(available: a2fseg, "):
        get_method("nope")


def test_the_cli_offers_exactly_the_registry():
    import typer

    from mmtumor.cli import app

    train = typer.main.get_command(app).commands["train"]
    option = next(p for p in train.params if p.name == "method")
    assert option.default == DEFAULT_METHOD and option.help == f"{', '.join(method_names())}."


def test_the_registry_does_not_import_torch():
    code = "import sys, mmtumor.methods, mmtumor.train.config; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
