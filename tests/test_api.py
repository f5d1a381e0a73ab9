"""The Python API mirrors the CLI flag for flag, and returns typed results."""

from __future__ import annotations

import inspect
import json

import nibabel as nib
import numpy as np
import pytest

# flags that only change what the terminal shows (the API returns the result instead of printing it)
PRESENTATION_ONLY = {"quiet", "as_json"}
# the CLI's positional name for the patients of `segment` is `patients`; the rest are the same words
COMMANDS = ("inspect", "segment", "compare", "convert", "train", "benchmark", "synth")


def _cli_params(name: str) -> list:
    """The click parameters of one command (name, default, required)."""
    from typer.main import get_command

    from mmtumor.cli import app

    return get_command(app).commands[name].params


@pytest.mark.parametrize("name", COMMANDS)
def test_every_cli_flag_is_an_api_keyword_of_the_same_name(name):
    """A flag added to the CLI without its API keyword (or renamed in one place only) fails here."""
    from mmtumor import api

    accepted = set(inspect.signature(getattr(api, name)).parameters)
    missing = [p.name for p in _cli_params(name) if p.name not in PRESENTATION_ONLY and p.name not in accepted]
    assert not missing, f"api.{name} lacks the CLI's {missing}"


@pytest.mark.parametrize("name", ["segment", "benchmark", "train", "compare", "convert"])
def test_api_defaults_are_the_cli_defaults(name):
    """Same flag, same default: a Python caller gets what a CLI user gets (None in the API = the CLI's default is
    computed, e.g. the ET threshold from postprocess, or the method's paper default)."""
    from mmtumor import api
    from mmtumor.postprocess import DEFAULT_MIN_ET_VOXELS

    sig = inspect.signature(getattr(api, name)).parameters
    for p in _cli_params(name):
        if p.name in PRESENTATION_ONLY or p.name not in sig or p.required:
            continue
        api_default = sig[p.name].default
        if api_default is inspect.Parameter.empty:
            continue
        cli_default = p.default
        if isinstance(cli_default, (list, tuple)) and not cli_default:
            cli_default = None
        if api_default is None and p.name == "min_et_voxels":
            api_default = DEFAULT_MIN_ET_VOXELS
        if isinstance(cli_default, str) and api_default is not None and not isinstance(api_default, str):
            api_default = str(api_default)
        if p.name == "patients":
            continue  # CLI: no folder = the explicit files; API: None (or []) = the same
        assert api_default == cli_default or str(api_default) == str(cli_default), (name, p.name, api_default, cli_default)


def test_segment_takes_nibabel_images_and_paths_and_returns_a_typed_run(phantom_dir, tiny_weights, tmp_path):
    """``api.segment(t1c=<nibabel image>, flair=<path>)`` equals the CLI with the two files; the in-memory image is
    written to a temporary file that is gone afterwards, and the caller's image object is left as it was."""
    from typer.testing import CliRunner

    from mmtumor import api
    from mmtumor.cli import app

    case = phantom_dir / "Synth_00001"
    t1c, flair = case / "Synth_00001_t1ce.nii.gz", case / "Synth_00001_flair.nii.gz"
    r = CliRunner().invoke(app, ["segment", "--t1c", str(t1c), "--flair", str(flair), "-o", str(tmp_path / "cli"),
                                 "--weights", str(tiny_weights), "--device", "cpu", "--fast", "--no-preview"])
    assert r.exit_code == 0, r.output
    image = nib.load(str(t1c))
    before = np.asanyarray(image.dataobj).copy()
    run = api.segment(None, tmp_path / "api", t1c=image, flair=flair, weights=str(tiny_weights), device="cpu",
                      fast=True, preview=False)
    assert isinstance(run, api.SegmentRun) and not run.failures and len(run.results) == 1
    a = np.asarray(nib.load(str(tmp_path / "api" / "segmentation.nii.gz")).dataobj)
    b = np.asarray(nib.load(str(tmp_path / "cli" / "segmentation.nii.gz")).dataobj)
    assert np.array_equal(a, b) and np.count_nonzero(a) > 0
    assert run.results[0]["volumes_ml"] == json.loads((tmp_path / "cli" / "volumes.json").read_text())
    assert np.array_equal(np.asanyarray(image.dataobj), before)
    with pytest.raises(api.InputError, match="nibabel image"):
        api.segment(None, tmp_path / "bad", t1c=np.zeros((4, 4, 4)), weights=str(tiny_weights))
    with pytest.raises(api.InputError, match="skull_strip"):
        api.segment(None, tmp_path / "bad", t1c=t1c, skull_strip="maybe")


def test_convert_mapping_file_or_dict_and_single_flags_win(tmp_path):
    """``api.convert(mapping=...)`` takes the CLI's JSON file or its dict; ``t1=`` etc. win over it; an unreadable
    file is one clear error."""
    from mmtumor import api
    from mmtumor.errors import MmtumorError
    from mmtumor.synth import generate_case
    from mmtumor.synth.dicom import write_study

    case = generate_case(7, shape=(48, 48, 32))
    write_study({m: (img, case.affine) for m, img in case.images.items()}, tmp_path / "study", seed=1)
    study = api.inspect(tmp_path / "study")
    flair_series = next(s for s in study.series if s["detected"] == "FLAIR")["series_id"]
    t2_series = next(s for s in study.series if s["detected"] == "T2")["series_id"]
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"FLAIR": t2_series}))  # deliberately the wrong series, then overridden
    res = api.convert(tmp_path / "study", tmp_path / "out", mapping=mapping, flair=str(flair_series))
    assert isinstance(res, api.ConvertResult) and set(res.written) == {"T1", "T1c", "T2", "FLAIR"}
    by_mod = {s["selected"]: s["series_id"] for s in res.series if s.get("selected")}
    assert by_mod["FLAIR"] == flair_series
    # a series is one modality: naming the T2 series as FLAIR leaves T2 missing, with a warning, not converted twice
    res2 = api.convert(tmp_path / "study", tmp_path / "out2", mapping={"FLAIR": t2_series})
    assert {s["series_id"]: s["selected"] for s in res2.series if s.get("selected")}[t2_series] == "FLAIR"
    assert [s["series_id"] for s in res2.series if s.get("selected") == "FLAIR"] == [t2_series]
    assert "T2" in res2.missing and any("was detected as T2 but is used as FLAIR" in w for w in res2.warnings)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(MmtumorError, match="cannot read mapping file"):
        api.convert(tmp_path / "study", tmp_path / "out3", mapping=tmp_path / "broken.json")
