"""Nothing lost, nothing silent (docs/reliability.md): all-or-nothing outputs, one red line for every failure, batch
isolation, warnings for doubtful input, and training state that can be trusted."""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from mmtumor.cli import app
from mmtumor.io.staging import recover, staging_leftovers

runner = CliRunner()


def _md5s(folder: Path) -> dict:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _seg(args, weights, *extra) -> object:
    return runner.invoke(app, ["segment", *map(str, args), "--weights", str(weights), "--device", "cpu", "--fast", *extra])


def _one_red_line(result) -> bool:
    return "Traceback" not in result.output and result.output.count("error:") == 1


@pytest.fixture
def case(phantom_dir) -> Path:
    return phantom_dir / "Synth_00000"


# ----------------------------------------------------------------------------- all-or-nothing outputs
@pytest.mark.parametrize("failure", [RuntimeError("disk died"), KeyboardInterrupt()])
def test_a_failed_rerun_leaves_the_previous_results_whole(case, tiny_weights, tmp_path, monkeypatch, failure):
    out = tmp_path / "o"
    assert _seg([case, "-o", out], tiny_weights).exit_code == 0
    before = _md5s(out)
    import mmtumor.infer.preview as preview

    def broken(*a, **k):  # the preview comes after the segmentation and volumes: a late failure
        raise failure

    monkeypatch.setattr(preview, "write_preview", broken)
    r = _seg([case, "-o", out, "--min-component-fraction", "0.5"], tiny_weights)
    assert r.exit_code == (130 if isinstance(failure, KeyboardInterrupt) else 1) and "Traceback" not in r.output
    assert _md5s(out) == before  # old segmentation, report and preview untouched, nothing mixed in
    assert staging_leftovers(tmp_path) == []


def test_a_successful_rerun_replaces_the_whole_set(case, tiny_weights, tmp_path):
    out = tmp_path / "o"
    assert _seg([case, "-o", out, "--save-probabilities"], tiny_weights).exit_code == 0
    assert (out / "probabilities.nii.gz").exists()
    assert _seg([case, "-o", out, "--no-preview"], tiny_weights).exit_code == 0
    assert not (out / "probabilities.nii.gz").exists() and not (out / "preview.png").exists()  # no stale file kept
    report = json.loads((out / "report.json").read_text())
    assert all(Path(p).parent == out and Path(p).exists() for p in report["outputs"].values())


def test_leftovers_of_killed_runs_are_recognised_and_cleaned(tmp_path):
    out = tmp_path / "o"
    dead = tmp_path / ".o.staging-999999999-abcd"  # no such process
    dead.mkdir()
    (dead / "segmentation.nii.gz").write_bytes(b"half")
    previous = tmp_path / ".o.previous-1234"  # a swap killed between its two renames: OUT is missing
    previous.mkdir()
    (previous / "report.json").write_text("{}")
    notes = recover(out)
    assert not dead.exists() and (out / "report.json").exists() and not previous.exists() and len(notes) == 2
    mine = tmp_path / f".o.staging-{os.getpid()}-ffff"  # a live run's staging folder is left alone
    mine.mkdir()
    recover(out)
    assert mine.exists()


def test_output_location_is_checked_before_any_work(case, tiny_weights, tmp_path):
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    for target, words in ((a_file, "is a file"), (a_file / "sub", "is a file")):
        r = _seg([case, "-o", target], tiny_weights)
        assert r.exit_code == 1 and words in r.output and _one_red_line(r)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("my notes")
    r = _seg([case, "-o", foreign], tiny_weights)
    assert r.exit_code == 1 and "did not write" in r.output and (foreign / "notes.txt").read_text() == "my notes"


def test_dicom_seg_on_nifti_input_fails_before_writing_anything(case, tiny_weights, tmp_path):
    r = _seg([case, "-o", tmp_path / "o", "--output-type", "dicom-seg"], tiny_weights)
    assert r.exit_code == 1 and "needs DICOM input" in r.output and _one_red_line(r)
    assert not (tmp_path / "o").exists() and staging_leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- user text is never markup
def test_markup_in_paths_is_printed_as_text(case, tiny_weights, tmp_path):
    import shutil

    odd = tmp_path / "pat[/red][bold]"
    shutil.copytree(case, odd)
    r = _seg([odd, "-o", tmp_path / "out[/]"], tiny_weights)
    assert r.exit_code == 0, r.output
    assert "out[/]" in r.output and "uncorrelated" not in r.output  # printed as text, not eaten as markup
    assert (tmp_path / "out[/]" / "segmentation.nii.gz").exists()
    r = runner.invoke(app, ["inspect", str(odd)])
    assert r.exit_code == 0 and "Traceback" not in r.output


# ----------------------------------------------------------------------------- batch isolation
def _write(path: Path, data: np.ndarray, affine=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([6.0, 6.0, 6.0, 1.0]) if affine is None else affine), str(path))


def test_one_bad_patient_never_ends_a_batch(case, tiny_weights, tmp_path):
    import shutil

    root = tmp_path / "cohort"
    shutil.copytree(case, root / "a_good")
    rgb = np.zeros((40, 40, 26), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    _write(root / "b_rgb" / "b_rgb_flair.nii.gz", rgb)
    _write(root / "c_tiny" / "c_tiny_flair.nii.gz", np.random.default_rng(0).random((8, 8, 8)).astype(np.float32),
           np.eye(4))
    shutil.copytree(case, root / "d_good")
    r = runner.invoke(app, ["segment", "--batch", str(root), "-o", str(tmp_path / "out"), "--weights", str(tiny_weights),
                            "--device", "cpu", "--fast", "--no-preview", "-q"])
    assert r.exit_code == 12 and "Traceback" not in r.output and "2 of 4 patient(s) failed" in " ".join(r.output.split())
    assert (tmp_path / "out" / "a_good" / "segmentation.nii.gz").exists()
    assert (tmp_path / "out" / "d_good" / "segmentation.nii.gz").exists()  # after the failures: still run
    assert "RGB" in r.output and "too small" in r.output


def test_two_patients_with_one_name_get_two_outputs(case, tiny_weights, tmp_path):
    import shutil

    shutil.copytree(case, tmp_path / "site1" / "p1")
    shutil.copytree(case, tmp_path / "site2" / "p1")
    r = runner.invoke(app, ["segment", str(tmp_path / "site1" / "p1"), str(tmp_path / "site2" / "p1"), "-o",
                            str(tmp_path / "out"), "--weights", str(tiny_weights), "--device", "cpu", "--fast",
                            "--no-preview", "-q"])
    assert r.exit_code == 0, r.output
    reports = [json.loads((tmp_path / "out" / n / "report.json").read_text()) for n in ("p1", "p1-2")]
    assert [Path(rep["input"]["images"]["FLAIR"]).parts[-3] for rep in reports] == ["site1", "site2"]


# ----------------------------------------------------------------------------- doubtful input is said
def _nan_case(tmp_path: Path, case: Path, fraction: float) -> Path:
    import shutil

    dst = tmp_path / f"nan{fraction}"
    shutil.copytree(case, dst)
    f = dst / "Synth_00000_t1ce.nii.gz"
    img = nib.load(str(f))
    data = np.asarray(img.dataobj).astype(np.float32)
    rng = np.random.default_rng(1)
    data[rng.random(data.shape) < fraction] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine), str(f))
    return dst


def test_non_finite_voxels_are_warned_about_or_refused(case, tiny_weights, tmp_path):
    few = _nan_case(tmp_path, case, 0.003)
    r = _seg([few, "-o", tmp_path / "o1", "--no-preview"], tiny_weights)
    assert r.exit_code == 0, r.output
    warnings = json.loads((tmp_path / "o1" / "report.json").read_text())["warnings"]
    assert any("non-finite voxels" in w for w in warnings) and "non-finite" in r.output
    many = _nan_case(tmp_path, case, 0.07)
    r = _seg([many, "-o", tmp_path / "o2"], tiny_weights)
    assert r.exit_code == 1 and "NaN or Inf" in r.output and _one_red_line(r) and not (tmp_path / "o2").exists()


def test_noise_and_coarse_voxels_are_flagged_unreliable(tiny_weights, tmp_path):
    rng = np.random.default_rng(3)
    for m in ("t1", "t1ce", "t2", "flair"):
        _write(tmp_path / "noise" / f"n_{m}.nii.gz", rng.random((40, 40, 26)).astype(np.float32))
    r = _seg([tmp_path / "noise", "-o", tmp_path / "o", "--no-preview"], tiny_weights)
    assert r.exit_code == 0, r.output
    warnings = " ".join(json.loads((tmp_path / "o" / "report.json").read_text())["warnings"])
    assert "looks like noise" in warnings and "unreliable" in warnings
    coarse = np.zeros((20, 20, 8), np.float32)
    coarse[4:16, 4:16, 2:6] = rng.random((12, 12, 4)) + 1
    _write(tmp_path / "coarse" / "c_flair.nii.gz", coarse, np.diag([10.0, 10.0, 30.0, 1.0]))
    r = _seg([tmp_path / "coarse", "-o", tmp_path / "o2", "--no-preview"], tiny_weights)
    assert r.exit_code == 0, r.output
    assert "coarser than" in json.dumps(json.loads((tmp_path / "o2" / "report.json").read_text())["warnings"])


# ----------------------------------------------------------------------------- options and devices
def test_option_values_out_of_range_are_usage_errors(case, tiny_weights, tmp_path):
    for extra in (["--sw-batch", "0"], ["--threads", "-2"], ["--overlap", "1.5"]):
        r = _seg([case, "-o", tmp_path / "never", *extra], tiny_weights)
        assert r.exit_code == 2 and "Traceback" not in r.output, extra
    r = runner.invoke(app, ["segment", str(case), "--weights", str(tiny_weights), "--device", "mps", "-o",
                            str(tmp_path / "o")])
    assert r.exit_code == 1 and "mps" in r.output and _one_red_line(r) and not (tmp_path / "o").exists()
    r = runner.invoke(app, ["train", str(case.parent), "--method", "nope", "-o", str(tmp_path / "never")])
    assert r.exit_code == 1 and "unknown method" in r.output and _one_red_line(r) and not (tmp_path / "never").exists()


# ----------------------------------------------------------------------------- training state
def _train(data, run, *extra):
    return runner.invoke(app, ["train", str(data), "--method", "unet", "-o", str(run), "--preset", "tiny", "--epochs", "2",
                               "--iters-per-epoch", "1", "--patch", "32", "32", "32", "--device", "cpu", "--workers", "0",
                               "--no-amp", "--val-every", "0", "-q", *extra])


def test_training_runs_are_never_silently_mixed(phantom_dir, tmp_path):
    run = tmp_path / "run"
    assert _train(phantom_dir, run, "--stop-after", "1").exit_code == 0
    r = _train(phantom_dir, run)
    assert r.exit_code == 1 and "--resume" in r.output and _one_red_line(r)  # a finished run is not overwritten
    moved = tmp_path / "moved"
    import shutil

    shutil.copytree(run, moved)
    r = _train(phantom_dir, moved, "--resume")
    assert r.exit_code == 0, r.output
    assert json.loads((moved / "config.json").read_text())["run_dir"] == str(moved)  # -o honoured by --resume
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1  # the original run was not touched
    assert len((moved / "metrics.jsonl").read_text().splitlines()) == 2
    r = _train(phantom_dir, run, "--overwrite")
    assert r.exit_code == 0 and len((run / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_truncated_checkpoint_is_one_clear_line(phantom_dir, tmp_path):
    run = tmp_path / "run"
    assert _train(phantom_dir, run, "--stop-after", "1").exit_code == 0
    (run / ".tmp-abc.pt").write_bytes(b"")  # what a save killed with SIGKILL leaves
    assert _train(phantom_dir, run, "--resume", "--stop-after", "1").exit_code == 0
    assert not list(run.glob(".tmp-*"))  # recognised and removed by the next run
    data = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(data[: len(data) // 3])
    r = _train(phantom_dir, run, "--resume")
    assert r.exit_code == 1 and "truncated" in r.output and _one_red_line(r)


def test_a_failed_training_start_leaves_no_run_folder(tmp_path):
    (tmp_path / "data").mkdir()
    r = _train(tmp_path / "data", tmp_path / "run")
    assert r.exit_code == 1 and not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- fuzz: no input prints a traceback
FUZZ_CASES = 24


def _bad_input(i: int, root: Path) -> list[str]:
    """A generated bad patient (seeded by ``i``): wrong shapes, types, geometry, contents and file names."""
    rng = np.random.default_rng(zlib.crc32(f"fuzz{i}".encode()))
    folder = root / f"p{i}"
    folder.mkdir(parents=True)
    kind = i % 12
    shape = tuple(int(s) for s in rng.integers(2, 40, size=3))
    aff = np.diag([*rng.uniform(0.5, 12, size=3), 1.0])
    if kind == 0:  # garbage bytes with a NIfTI name
        (folder / "x_flair.nii.gz").write_bytes(rng.bytes(int(rng.integers(0, 400))))
    elif kind == 1:  # a 2D image
        _write(folder / "x_t1.nii.gz", rng.random((30, 30)).astype(np.float32), aff)
    elif kind == 2:  # 4D with several volumes
        _write(folder / "x_t2.nii.gz", rng.random((20, 20, 20, 3)).astype(np.float32), aff)
    elif kind == 3:  # complex voxels
        _write(folder / "x_flair.nii.gz", (rng.random(shape) + 1j * rng.random(shape)).astype(np.complex64), aff)
    elif kind == 4:  # a zero affine (sform all zeros, no qform)
        img = nib.Nifti1Image(rng.random(shape).astype(np.float32), np.eye(4))
        img.set_sform(np.zeros((4, 4)), code=2)
        img.set_qform(None, code=0)
        nib.save(img, str(folder / "x_t1ce.nii.gz"))
    elif kind == 5:  # all NaN
        _write(folder / "x_flair.nii.gz", np.full(shape, np.nan, np.float32), aff)
    elif kind == 6:  # constant image
        _write(folder / "x_t2.nii.gz", np.ones(shape, np.float32), aff)
    elif kind == 7:  # modalities on different grids with mismatching shapes
        _write(folder / "x_t1.nii.gz", rng.random(shape).astype(np.float32), aff)
        _write(folder / "x_flair.nii.gz", rng.random((shape[0] + 3, 9, 11)).astype(np.float32), aff * 2)
    elif kind == 8:  # an empty file
        (folder / "x_t1.nii").write_bytes(b"")
    elif kind == 9:  # no images at all, only a text file
        (folder / "readme.txt").write_text("not an image")
    elif kind == 10:  # an RGB NIfTI
        _write(folder / "x_t1ce.nii.gz", np.zeros(shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")]), aff)
    else:  # a tiny volume with a huge voxel and infinite values
        data = rng.random(shape).astype(np.float32)
        data.flat[0] = np.inf
        _write(folder / "x_flair.nii.gz", data, np.diag([40.0, 40.0, 40.0, 1.0]))
    return [str(folder)]


def test_fuzz_no_bad_input_prints_a_traceback(tiny_weights, tmp_path):
    """Generated bad inputs through segment and inspect: every run ends in exit 0, 1 or 2, never in a traceback."""
    codes = []
    for i in range(FUZZ_CASES):
        args = _bad_input(i, tmp_path / "in")
        for cmd in (["segment", *args, "-o", str(tmp_path / "out" / str(i)), "--weights", str(tiny_weights), "--device",
                     "cpu", "--fast", "--no-preview", "-q"], ["inspect", *args]):
            r = runner.invoke(app, cmd)
            assert r.exit_code in (0, 1, 2), (i, cmd[0], r.output)
            assert "Traceback" not in r.output and not isinstance(r.exception, Exception) or isinstance(
                r.exception, SystemExit), (i, cmd[0], r.output, r.exception)
            codes.append(r.exit_code)
    assert codes.count(1) >= FUZZ_CASES  # most of these must be refused, each with its one line


def test_an_unreachable_hub_is_one_line_in_seconds(tmp_path, monkeypatch):
    """No network (here: nothing listens on the endpoint's port): one red line, no retry lines, no half a minute."""
    import socket
    import time

    with socket.socket() as s:  # a port that is certainly closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MMTUMOR_HOME", str(tmp_path / "home"))
    t0 = time.perf_counter()
    r = runner.invoke(app, ["weights", "pull", "hf://owner/repo@v1"])
    assert r.exit_code == 1 and "cannot reach" in r.output and _one_red_line(r)
    assert len(r.output.strip().splitlines()) <= 2 and time.perf_counter() - t0 < 10


class ForeignObject:
    """Any Python object pickled into a .pt file (module level, so torch.save can pickle it)."""


def test_weights_refusals_are_plain(tmp_path, case, tiny_weights):
    import torch

    r = runner.invoke(app, ["segment", str(case), "--weights", "", "-o", str(tmp_path / "o")])
    assert r.exit_code == 1 and "--weights is empty" in r.output and _one_red_line(r)

    torch.save({"model": ForeignObject()}, tmp_path / "pickled.pt")
    r = runner.invoke(app, ["weights", "export", str(tmp_path / "pickled.pt"), "-o", str(tmp_path / "w")])
    assert r.exit_code == 1 and "pickled Python objects" in r.output and "weights_only=False" not in r.output
    assert _one_red_line(r)


# ----------------------------------------------------------------------------- real small and read-only disks
@pytest.fixture
def tmpfs(tmp_path):
    """Mount a tmpfs of a given size (read-only if asked) under tmp_path; skipped where mounting is not allowed."""
    import subprocess

    mounted = []

    def mount(size_kb: int, read_only: bool = False) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        opts = f"size={size_kb}k" + (",ro" if read_only else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True)
        if r.returncode != 0:
            pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], capture_output=True)


def test_read_only_mount_is_refused_before_any_work(case, tiny_weights, tmpfs):
    disk = tmpfs(256, read_only=True)
    r = _seg([case, "-o", disk / "out"], tiny_weights)
    assert r.exit_code == 1 and "cannot be written" in r.output and _one_red_line(r)
    assert list(disk.iterdir()) == []


def test_nearly_full_disk_is_refused_before_any_work(case, tiny_weights, tmpfs):
    disk = tmpfs(256)
    r = _seg([case, "-o", disk / "out"], tiny_weights)
    assert r.exit_code == 1 and "not enough free space" in r.output and _one_red_line(r)
    assert list(disk.iterdir()) == []


def test_disk_filling_up_while_writing_leaves_nothing(case, tiny_weights, tmpfs, monkeypatch):
    """The free-space estimate defeated on purpose: the writes themselves hit ENOSPC half-way through the outputs."""
    import mmtumor.infer.predictor as predictor
    import mmtumor.io.staging as staging

    monkeypatch.setattr(staging, "FREE_SPACE_MARGIN", 0)
    monkeypatch.setattr(predictor, "expected_output_bytes", lambda patient: 0)
    disk = tmpfs(96)
    r = _seg([case, "-o", disk / "out"], tiny_weights)
    assert r.exit_code == 1 and _one_red_line(r) and "space" in r.output.lower()
    assert list(disk.iterdir()) == []  # the staging folder went with the failure: nothing half-written
