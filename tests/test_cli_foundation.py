import json

from typer.testing import CliRunner

from mmtumor import __version__
from mmtumor.cli import app

from conftest import make_case

runner = CliRunner()


def test_version_and_help():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output
    r = runner.invoke(app, ["-h"])
    assert r.exit_code == 0
    for cmd in ("segment", "convert", "inspect", "train", "benchmark", "synth", "weights"):
        assert cmd in r.output


def test_inspect_table_and_json(brats2020_dir):
    r = runner.invoke(app, ["inspect", str(brats2020_dir)])
    assert r.exit_code == 0, r.output
    assert "5 case(s)" in r.output
    r = runner.invoke(app, ["inspect", str(brats2020_dir), "--json"])
    assert r.exit_code == 0
    data = json.loads(r.output)
    assert len(data["cases"]) == 5
    row = data["cases"][0]
    assert row["shape"] == [12, 10, 8] and row["orientation"] == "RAS" and row["label_values"] == [0, 1, 2, 4]
    # the API returns the same description, typed: what --json prints is the result's JSON document
    from mmtumor import api

    result = api.inspect(brats2020_dir)
    assert result.kind == "nifti" and result.root == brats2020_dir and len(result.cases) == 5
    assert json.loads(json.dumps(result.to_json(), default=str)) == data and result.problems == []


def test_inspect_reports_problems_without_failing(tmp_path):
    import numpy as np
    from conftest import write_img

    folder = make_case(tmp_path, "bad", modalities=("t1", "t2"))
    write_img(folder / "bad_flair.nii.gz", np.zeros((5, 5, 5), np.float32))
    r = runner.invoke(app, ["inspect", str(tmp_path), "--json"])
    assert r.exit_code == 0
    assert any("shape mismatch" in p for p in json.loads(r.output)["cases"][0]["problems"])
    from mmtumor import api

    assert any(p.startswith("bad: shape mismatch") for p in api.inspect(tmp_path).problems)


def test_user_errors_are_one_line_exit_1(tmp_path):
    r = runner.invoke(app, ["inspect", str(tmp_path / "missing")])
    assert r.exit_code == 1
    assert "error:" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = runner.invoke(app, ["inspect", str(tmp_path)])
    assert r.exit_code == 1 and "no cases found" in r.output


def test_usage_error_exit_2():
    r = runner.invoke(app, ["inspect"])
    assert r.exit_code == 2


def test_inspect_real_data(real_dir):
    r = runner.invoke(app, ["inspect", str(real_dir), "--json"])
    assert r.exit_code == 0
    rows = {c["case_id"]: c for c in json.loads(r.output)["cases"]}
    assert rows["BraTS-GLI-00001-000"]["subset"] == "1111" and rows["BraTS-GLI-00001-000"]["label"] is None
    assert rows["BraTS-GLI-00001-000"]["shape"] == [240, 240, 155]
    for i in range(1, 7):
        row = rows[f"brats_2013_pat000{i}_1"]
        assert row["subset"] == "0101" and row["label_scheme"] == "brats2013" and not row["problems"]


def test_import_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys, mmtumor, mmtumor.cli, mmtumor.api; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    # the API as an attribute of the bare package, lazily (no second import line, still no torch)
    code = "import sys, mmtumor; f = mmtumor.api.compare, mmtumor.segment_images; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "False", r.stderr[-500:]


def test_error_text_with_brackets_is_not_markup(tmp_path):
    r = runner.invoke(app, ["inspect", str(tmp_path / "[Errno 2] odd[/]name")])
    assert r.exit_code == 1 and "Traceback" not in r.output and "[Errno 2]" in r.output
