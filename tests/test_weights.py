"""Weights subsystem: export -> safetensors -> load gives identical outputs; SHA-256 checks; the real
huggingface_hub download path against a local fake Hub (tests/hub_server.py) via HF_ENDPOINT: caching,
HF_HUB_OFFLINE, checksum mismatch, pinned revisions, push; CLI exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub_server import FakeHub  # noqa: E402

from mmtumor import weights as W  # noqa: E402
from mmtumor.cli import app  # noqa: E402
from mmtumor.errors import InputError, MmtumorError, ReadError  # noqa: E402
from mmtumor.models.registry import build_model, methods  # noqa: E402

METHODS = {m.name for m in methods()}
pytestmark = pytest.mark.skipif(not {"unet", "a2fseg"} & METHODS, reason="no real method registered")
runner = CliRunner()
X = torch.randn(1, 4, 16, 16, 16, generator=torch.Generator().manual_seed(1))
PRESENT = torch.tensor([[True, False, True, True]])


def _method() -> str:
    return "a2fseg" if "a2fseg" in METHODS else "unet"


def _make_run(folder: Path, method: str, seed: int = 0, prefix: str = "", **overrides) -> tuple[Path, torch.nn.Module]:
    """A checkpoint in our trainer's format, with random (non-initial) weights."""
    model = build_model(method, "tiny", **overrides)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    model.eval()
    import dataclasses

    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(model.config).items()}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({
        "method": method, "config": cfg, "model": {prefix + k: v for k, v in model.state_dict().items()},
        "full_model": model.state_dict(), "epoch": 3, "best": 0.5,
        "train_config": json.dumps({"method": method, "patch": [32, 32, 32], "epochs": 3, "lr": 0.01, "preset": "tiny"}),
        "history": json.dumps([{"epoch": 3, "val": {"score": 0.5}}]),
    }, folder / "best.pt")
    return folder, model


def _out(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(X, PRESENT)["logits"]


METRICS = {"expected_dice": {"1111": {"WT": 0.9, "TC": 0.8, "ET": 0.7}, "0101": {"WT": 0.85, "TC": 0.6, "ET": 0.5}},
           "expected_dice_source": "24 held-out phantoms", "real": {"brats2013-flair-t1c": {"WT": 0.7, "TC": 0.4, "ET": 0.3}}}


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Isolated MMTUMOR_HOME, no offline mode (neither env nor huggingface_hub's import-time constant)."""
    from huggingface_hub import constants

    monkeypatch.setenv("MMTUMOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MMTUMOR_WEIGHTS_DIR", str(tmp_path / "no-bundle"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    return tmp_path


@pytest.fixture
def exported(env):
    """One exported model folder (name 'tiny') and the original module."""
    run, model = _make_run(env / "run", _method(), base_features=4, max_features=16)
    rw = W.export_run(run, env / "export", "tiny", meta={"metrics": METRICS, "training_data": "phantoms v1"})
    return rw, model


@pytest.fixture
def hub(env, exported, monkeypatch):
    with FakeHub() as server:
        server.add_commit("acme/tiny", {p.name: p.read_bytes() for p in (env / "export").iterdir()}, tags=("v1",))
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield server


# ------------------------------------------------------------------------------------------ export / load
def test_export_load_roundtrip_identical_outputs(exported, env):
    rw, model = exported
    files = sorted(p.name for p in (env / "export").iterdir())
    assert files == ["manifest.json", "tiny.json", "tiny.md", "tiny.safetensors"]  # no pickle anywhere
    manifest = json.loads((env / "export" / "manifest.json").read_text())
    entry = manifest["models"][0]
    assert manifest["default"] == "tiny" and entry["method"] == _method()
    assert entry["files"]["tiny.safetensors"]["sha256"] == W.sha256_file(env / "export" / "tiny.safetensors")
    meta = json.loads((env / "export" / "tiny.json").read_text())
    assert meta["config"]["base_features"] == 4 and meta["patch_size"] == [32, 32, 32]
    assert meta["training"]["epochs"] == 3 and meta["training"]["last_validation"] == {"score": 0.5}
    loaded, meta2 = W.load_model(W.resolve(env / "export"))
    assert not loaded.training and meta2["name"] == "tiny"
    assert torch.equal(_out(loaded), _out(model))
    card = (env / "export" / "tiny.md").read_text()
    assert "Research use only" in card and "| ○ | ● | ○ | ● | 0.850 | 0.600 | 0.500 |" in card


def test_export_float16_strips_wrappers(env):
    run, model = _make_run(env / "run16", "unet", prefix="module._orig_mod.")
    rw32 = W.export_run(run, env / "e32", "u32")
    rw16 = W.export_run(run, env / "e16", "u16", dtype="float16")
    assert rw16.weights_path.stat().st_size < 0.6 * rw32.weights_path.stat().st_size
    loaded, _ = W.load_model(rw16)
    assert torch.allclose(_out(loaded), _out(model), atol=2e-2)
    assert not torch.equal(_out(loaded), _out(model))  # fp16 really stored


def test_export_rejects_bad_runs(env):
    with pytest.raises(InputError, match="no checkpoint"):
        (env / "empty").mkdir()
        W.export_run(env / "empty", env / "out")
    run, _ = _make_run(env / "run", "unet")
    with pytest.raises(InputError, match="invalid model name"):
        W.export_run(run, env / "out", "bad name!")
    ck = torch.load(run / "best.pt", weights_only=True)
    ck["config"]["base_features"] = 16  # config no longer fits the tensors
    torch.save(ck, run / "best.pt")
    with pytest.raises(W.WeightsError, match="do not fit"):
        W.export_run(run, env / "out", "x")
    assert not (env / "out" / "x.safetensors").exists()


def test_resolve_local_specs_and_bundled(exported, env, monkeypatch):
    rw, _ = exported
    by_file = W.resolve(str(env / "export" / "tiny.safetensors"))
    assert by_file.verified and by_file.name == "tiny"
    monkeypatch.setenv("MMTUMOR_WEIGHTS_DIR", str(env / "export"))
    assert W.resolve("tiny").source == "bundled" and W.resolve(None).name == "tiny"
    with pytest.raises(W.WeightsError, match="available: tiny"):
        W.resolve("nope")
    with pytest.raises(InputError, match="not found"):
        W.resolve(str(env / "missing" / "x.safetensors"))
    # a bare pair without manifest loads, unverified
    bare = env / "bare"
    bare.mkdir()
    for suffix in (".safetensors", ".json"):
        (bare / f"m{suffix}").write_bytes((env / "export" / f"tiny{suffix}").read_bytes())
    assert not W.resolve(bare).verified


def test_never_unpickles(env):
    """A pickle disguised as .safetensors is refused by the safetensors reader, not executed."""
    folder = env / "evil"
    folder.mkdir()
    torch.save({"x": torch.zeros(2)}, folder / "m.safetensors")
    (folder / "m.json").write_text(json.dumps({"method": "unet", "config": {}}))
    with pytest.raises(ReadError, match="cannot read weights"):
        W.load_model(W.resolve(folder))


def test_verify_and_cli_exit_codes(exported, env, monkeypatch):
    monkeypatch.setenv("MMTUMOR_WEIGHTS_DIR", str(env / "export"))
    assert all(c.ok for c in W.verify()) and len(W.verify("tiny")) == 2
    res = runner.invoke(app, ["weights", "list"])
    assert res.exit_code == 0 and "tiny" in res.stdout and "bundled" in res.stdout and "0.88" in res.stdout
    rows = json.loads(runner.invoke(app, ["weights", "list", "--json"]).stdout)
    assert rows[0]["name"] == "tiny" and rows[0]["default"] and rows[0]["size_bytes"] > 1000
    assert runner.invoke(app, ["weights", "verify"]).exit_code == 0
    blob = bytearray((env / "export" / "tiny.safetensors").read_bytes())
    blob[-1] ^= 1
    (env / "export" / "tiny.safetensors").write_bytes(bytes(blob))
    res = runner.invoke(app, ["weights", "verify", "tiny"])
    assert res.exit_code == 1 and "SHA-256 differs" in res.stdout
    with pytest.raises(W.ChecksumError, match="tiny.safetensors"):
        W.resolve("tiny")
    res = runner.invoke(app, ["weights", "verify", "nope"])
    assert res.exit_code == 1 and "Traceback" not in res.output


def test_expected_dice_and_summary(exported):
    rw, _ = exported
    from mmtumor.modalities import subset_from_code

    assert W.expected_dice(rw.meta, "0101") == {"WT": 0.85, "TC": 0.6, "ET": 0.5}
    assert W.expected_dice(rw.meta, "T1c+FLAIR") == W.expected_dice(rw.meta, subset_from_code("0101"))
    assert W.expected_dice(rw.meta, "1000") is None and W.expected_dice({}, "1111") is None
    s = W.summary(rw.meta)
    assert "WT 0.88" in s and "real brats2013-flair-t1c: WT 0.70" in s
    more = {**rw.meta["metrics"], "real": {**rw.meta["metrics"]["real"], "clinical": {"WT": 0.6, "TC": 0.5, "ET": 0.4}}}
    s2 = W.summary({**rw.meta, "metrics": more})
    assert "real brats2013-flair-t1c: WT 0.70" in s2 and "+1 more" in s2 and "clinical" not in s2
    rw2 = W.update_meta(rw.folder, "tiny", metrics={"expected_dice": {"1111": {"WT": 0.5, "TC": 0.4, "ET": 0.3}}})
    assert W.expected_dice(rw2.meta, "1111")["WT"] == 0.5 and all(c.ok for c in W.verify(rw.folder))


def test_parse_hub_spec():
    r = W.parse_hub_spec("hf://acme/repo/model-a@v1.0")
    assert (r.repo_id, r.name, r.revision) == ("acme/repo", "model-a", "v1.0")
    assert W.parse_hub_spec("hf://acme/repo").revision is None
    for bad in ("hf://acme", "hf://acme/repo@", "hf://a/b/c/d", "hf:///repo"):
        with pytest.raises(InputError):
            W.parse_hub_spec(bad)


# ---------------------------------------------------------------------------------------- Hub download
def test_hub_download_cache_and_offline(hub, exported, env, monkeypatch):
    rw_local, model = exported
    rw = W.resolve("hf://acme/tiny")
    assert rw.source == "hub" and rw.commit and rw.spec.endswith("@" + rw.commit)
    assert Path(env / "home" / "hub") in rw.weights_path.parents
    assert rw.files == rw_local.files
    assert hub.count("/cdn/lfs/") == 1 and hub.count("/acme/tiny/resolve/") >= 3  # LFS redirect really followed
    loaded, _ = W.load_model(rw)
    assert torch.equal(_out(loaded), _out(model))
    n = len(hub.requests)
    assert W.resolve("hf://acme/tiny").weights_path == rw.weights_path
    assert W.resolve("tiny").source == "hub"  # cached Hub models are found by name
    assert len(hub.requests) == n  # cache hits make no request
    assert [m.spec for m in W.list_models()] == [f"hf://acme/tiny/tiny@{rw.commit}"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert W.resolve("hf://acme/tiny").commit == rw.commit
    assert W.resolve("hf://acme/tiny", refresh=True).commit == rw.commit  # pull offline: cache
    assert len(hub.requests) == n
    monkeypatch.delenv("HF_HUB_OFFLINE")
    W.resolve("hf://acme/tiny", refresh=True)  # pull asks the Hub again
    assert len(hub.requests) > n


def test_hub_offline_without_cache_is_one_clear_line(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(W.OfflineError) as info:
        W.resolve("hf://acme/tiny")
    msg = str(info.value)
    assert "\n" not in msg and "mmtumor weights pull hf://acme/tiny" in msg and "HF_HUB_OFFLINE" in msg
    res = runner.invoke(app, ["weights", "pull", "hf://acme/tiny"])
    assert res.exit_code == 1 and "HF_HUB_OFFLINE" in res.output and "Traceback" not in res.output
    assert hub.requests == []


def test_hub_offline_read_at_import_time(hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as if HF_HUB_OFFLINE=1 was set before import
    with pytest.raises(W.OfflineError):
        W.resolve("hf://acme/tiny")
    assert hub.requests == []


def test_hub_checksum_mismatch_leaves_nothing(hub, env, monkeypatch):
    hub.tamper("acme/tiny", "tiny.safetensors", b"\x00" * 64 + (env / "export" / "tiny.safetensors").read_bytes()[64:])
    with pytest.raises(W.ChecksumError, match="SHA-256 differs"):
        W.resolve("hf://acme/tiny")
    storage = env / "home" / "hub" / "models--acme--tiny"
    leftovers = [p for p in storage.rglob("*") if p.is_file() and ".locks" not in p.parts] if storage.exists() else []
    assert leftovers == []
    assert W.list_models() == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(W.OfflineError):  # nothing usable was cached
        W.resolve("hf://acme/tiny")


def test_hub_corrupted_cache_is_refetched_or_reported(hub, monkeypatch):
    rw = W.resolve("hf://acme/tiny")
    blob = rw.weights_path.resolve()
    blob.write_bytes(blob.read_bytes()[:-1] + b"\x00")  # bit rot in the cache
    n = len(hub.requests)
    again = W.resolve("hf://acme/tiny")
    assert len(hub.requests) > n and W.sha256_file(again.weights_path) == rw.files["tiny.safetensors"]
    blob = again.weights_path.resolve()
    blob.write_bytes(blob.read_bytes()[:-1] + b"\x00")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(W.ChecksumError):
        W.resolve("hf://acme/tiny")


def test_hub_pinned_revision_and_errors(hub, env):
    v1 = W.resolve("hf://acme/tiny@v1")
    run2, model2 = _make_run(env / "run2", _method(), seed=7, base_features=4, max_features=16)
    W.export_run(run2, env / "export2", "tiny")
    new_commit = hub.add_commit("acme/tiny", {p.name: p.read_bytes() for p in (env / "export2").iterdir()})
    main = W.resolve("hf://acme/tiny")
    assert main.commit == new_commit and main.files != v1.files
    assert torch.equal(_out(W.load_model(main)[0]), _out(model2))
    pinned = W.resolve(f"hf://acme/tiny@{v1.commit}")
    assert pinned.commit == v1.commit and pinned.files == v1.files
    with pytest.raises(W.WeightsError, match="revision 'nope' not found"):
        W.resolve("hf://acme/tiny@nope")
    with pytest.raises(W.WeightsError, match="not found"):
        W.resolve("hf://acme/missing")
    with pytest.raises(W.WeightsError, match="no model 'other'"):
        W.resolve("hf://acme/tiny/other")
    hub.add_commit("acme/plain", {"README.md": b"not weights"})
    with pytest.raises(W.WeightsError, match="no manifest.json"):
        W.resolve("hf://acme/plain")


def test_snapshot_download_against_fake_hub(hub, env):
    """The fake Hub also answers snapshot_download (repo info + tree API), like the real one."""
    from huggingface_hub import snapshot_download

    path = Path(snapshot_download("acme/tiny", cache_dir=str(env / "snap"), endpoint=hub.endpoint))
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "tiny.json", "tiny.md", "tiny.safetensors"]
    assert W.sha256_file(path / "tiny.safetensors") == W.sha256_file(env / "export" / "tiny.safetensors")


def test_push_roundtrip_and_validation(hub, exported, env):
    _, model = exported
    url = W.push(env / "export", "acme/pushed", commit_message="test push")
    assert "acme/pushed/commit/" in url
    repo = hub.repos["acme/pushed"]
    files = repo.commits[repo.refs["main"]]
    assert {"README.md", "manifest.json", "tiny.safetensors", "tiny.json", "tiny.md"} <= set(files)
    assert b"library_name: mmtumor" in files["README.md"]
    assert not (env / "export" / "README.md").exists()  # the exported folder is not modified
    loaded, _ = W.load_model(W.resolve("hf://acme/pushed"))
    assert torch.equal(_out(loaded), _out(model))
    W.push(env / "export", "acme/pushed", revision="dev")
    assert W.resolve("hf://acme/pushed@dev").commit == repo.refs["dev"] != repo.refs["main"]
    with pytest.raises(InputError, match="owner/name"):
        W.push(env / "export", "no-owner")
    with pytest.raises(InputError, match="manifest"):
        W.push(env, "acme/x")
    (env / "export" / "tiny.json").write_text("{}")
    with pytest.raises(W.ChecksumError):
        W.push(env / "export", "acme/pushed")
    res = runner.invoke(app, ["weights", "push", str(env / "export"), "acme/pushed"])
    assert res.exit_code == 1 and "Traceback" not in res.output


def test_weights_errors_are_mmtumor_errors():
    assert issubclass(W.ChecksumError, MmtumorError) and issubclass(W.OfflineError, MmtumorError)


# ------------------------------------------------------------------------------- the repository's weights/
REPO_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


@pytest.mark.skipif(not (REPO_WEIGHTS / "manifest.json").is_file(), reason="no bundled weights yet")
def test_bundled_weights_are_valid(monkeypatch):
    """What ships: checksums match, sizes within the limits (20 MB a file, 80 MB in all), every model loads."""
    monkeypatch.setenv("MMTUMOR_WEIGHTS_DIR", str(REPO_WEIGHTS))
    checks = W.verify()
    assert checks and all(c.ok for c in checks), [c for c in checks if not c.ok]
    manifest = W.read_manifest(REPO_WEIGHTS)
    sizes = [info["size"] for m in manifest["models"] for info in m["files"].values()]
    assert max(sizes) <= 20e6 and sum(sizes) <= 80e6
    assert W.default_model_name() in {m["name"] for m in manifest["models"]}
    for entry in manifest["models"]:
        model, meta = W.load_model(W.resolve(entry["name"]))
        assert meta["format"] == W.FORMAT and meta["method"] == entry["method"]
        with torch.no_grad():
            assert model(torch.zeros(1, 4, 32, 32, 32), PRESENT)["logits"].shape == (1, 3, 32, 32, 32)


def test_a_training_run_given_as_weights_gets_a_clear_error(tmp_path):
    """A run folder holds manifest.json (the data split) and *.pt: say to export it, not that the manifest is odd."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text('{"cases": {}}')
    (run / "best.pt").write_bytes(b"x")
    (run / "config.json").write_text("{}")
    for spec in (run, run / "best.pt"):
        with pytest.raises(InputError, match="weights export"):
            W.resolve(str(spec))
    res = runner.invoke(app, ["benchmark", str(tmp_path), "--weights", str(run), "-q"])
    assert res.exit_code == 1 and "weights export" in res.output and "Traceback" not in res.output


# ------------------------------------------------------------------------------------------------ ensembles
def _two_exports(env, **meta_b) -> tuple[list[str], list[torch.nn.Module]]:
    """Two exports of different random weights in one folder (names m0, m1), with recorded training cases."""
    env = env / "_".join(meta_b) if meta_b else env
    runs = [_make_run(env / f"run{i}", _method(), seed=i, base_features=4, max_features=16) for i in range(2)]
    metas = [{"training_cases": {"caseA": "a" * 16, "Synth_00001": "c" * 16}, "region_thresholds": [0.5, 0.3, 0.3],
              "et_modalities": ["T1c", "FLAIR"]},
             {"training_cases": {"caseB": "b" * 16, "Synth_00001": "d" * 16}, **meta_b}]  # same name, other data
    for i, ((run, _), meta) in enumerate(zip(runs, metas)):
        W.export_run(run, env / "members", f"m{i}", meta=meta)
    return [str(env / "members" / f"m{i}.safetensors") for i in range(2)], [m for _, m in runs]


def test_ensemble_is_the_mean_of_its_members_probabilities(env):
    """One safetensors holds both members; sigmoid(ensemble logits) is the mean of their sigmoids; the card names
    the members; the training cases of both are recorded (so benchmark refuses either's)."""
    specs, models = _two_exports(env)
    rw = W.ensemble_weights(specs, env / "ens", "duo")
    loaded, meta = W.load_model(W.resolve(env / "ens" / "duo.safetensors"))
    with torch.no_grad():
        expected = torch.stack([torch.sigmoid(_out(m)) for m in models]).mean(0)
        got = torch.sigmoid(loaded(X, PRESENT)["logits"])
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, torch.sigmoid(_out(models[0])), atol=1e-3)  # really both members
    assert rw.method == "ensemble" and [m["name"] for m in meta["members"]] == ["m0", "m1"]
    assert meta["members"][0]["sha256"] == W.sha256_file(Path(specs[0]))
    assert meta["training_cases"] == {"caseA": "a" * 16, "caseB": "b" * 16, "Synth_00001": "c" * 16,
                                      "Synth_00001 (m1)": "d" * 16}
    assert meta["region_thresholds"] == [0.5, 0.3, 0.3] and meta["et_modalities"] == ["T1c", "FLAIR"]
    assert meta["patch_size"] == [32, 32, 32]
    card = (env / "ens" / "duo.md").read_text()
    assert "| Ensemble of | m0 (" in card and "m1 (" in card
    assert [c.ok for c in W.verify(str(env / "ens"))] == [True, True]


def test_ensemble_refuses_what_one_window_cannot_run(env):
    specs, _ = _two_exports(env, patch_size=[48, 48, 48])
    with pytest.raises(InputError, match="patch_size differ"):
        W.ensemble_weights(specs, env / "ens", "bad")
    # an older export keeps its voxel size only in the training recipe: the same grid, so it may join, and the
    # ensemble states the grid explicitly
    specs2, _ = _two_exports(env, training={"target_spacing": 2.0})
    W.update_meta(env / "training" / "members", "m0", spacing=2.0)
    rw = W.ensemble_weights(specs2, env / "ens-grid", "grid")
    assert rw.meta["spacing"] == 2.0 and rw.meta["training"] == {"ensemble_of": ["m0", "m1"]}
    specs3, _ = _two_exports(env, spacing=1.5)
    with pytest.raises(InputError, match="spacing differ"):
        W.ensemble_weights(specs3, env / "ens", "bad")
    with pytest.raises(InputError, match="at least two"):
        W.ensemble_weights(specs[:1], env / "ens", "bad")
    with pytest.raises(InputError, match="listed twice"):
        W.ensemble_weights([specs[0], specs[0]], env / "ens", "bad")
    assert not (env / "ens").exists()  # nothing half-written


def test_ensemble_cli_and_its_limits(env, tmp_path):
    specs, _ = _two_exports(env)
    res = runner.invoke(app, ["weights", "ensemble", *specs, "-o", str(env / "ens"), "--name", "duo"])
    assert res.exit_code == 0 and "ensemble duo of 2 models" in res.output, res.output
    duo = str(env / "ens" / "duo.safetensors")
    res = runner.invoke(app, ["weights", "ensemble", duo, specs[0], "-o", str(env / "ens2"), "--name", "trio"])
    assert res.exit_code == 1 and "itself a combined model (ensemble)" in res.output and "Traceback" not in res.output
    from mmtumor.train.trainer import load_init

    with pytest.raises(InputError, match="cannot initialise training.*m0, m1"):
        load_init(duo, _method())


def _logits(model: torch.nn.Module, present: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(X * present.view(1, 4, 1, 1, 1), present)["logits"]


def test_router_sends_exactly_the_listed_subsets_to_the_specialist(env):
    """Inputs equal to a routed subset take ET from the specialist and WT/TC from the base; any other input (a
    superset included) is the base's alone; the card and metadata say so; the base's thresholds and ET rule stay."""
    specs, (base, spec) = _two_exports(env)
    rw = W.route_weights(specs[0], specs[1], "T1c+FLAIR,T1c", env / "routed", "pair")
    loaded, meta = W.load_model(W.resolve(env / "routed" / "pair.safetensors"))
    for code in ("0101", "0100"):
        p = torch.tensor([[c == "1" for c in code]])
        got, b, s = _logits(loaded, p), _logits(base, p), _logits(spec, p)
        assert torch.allclose(got[:, :2], b[:, :2], atol=1e-5) and torch.allclose(got[:, 2], s[:, 2], atol=1e-5)
        assert not torch.allclose(got[:, 2], b[:, 2], atol=1e-3)  # the specialist really differs
    for code in ("1111", "0001", "1101"):
        p = torch.tensor([[c == "1" for c in code]])
        assert torch.allclose(_logits(loaded, p), _logits(base, p), atol=1e-5)
    mixed = torch.tensor([[False, True, False, True], [True, True, True, True]])  # one batch, two routes
    with torch.no_grad():
        both = loaded(X.repeat(2, 1, 1, 1, 1) * mixed.view(2, 4, 1, 1, 1), mixed)["logits"]
    assert torch.allclose(both[1:], _logits(base, mixed[1:]), atol=1e-5)
    assert torch.allclose(both[:1, 2], _logits(spec, mixed[:1])[:, 2], atol=1e-5)
    assert rw.method == "router" and meta["config"] == {"routes": [{"subsets": ["0101", "0100"], "regions": ["ET"]}]}
    assert [m["name"] for m in meta["members"]] == ["m0", "m1"]
    assert meta["region_thresholds"] == [0.5, 0.3, 0.3] and meta["et_modalities"] == ["T1c", "FLAIR"]
    assert set(meta["training_cases"]) == {"caseA", "caseB", "Synth_00001", "Synth_00001 (m1)"}
    card = (env / "routed" / "pair.md").read_text()
    assert "| Router of | m0 (" in card and "ET from member 2 for T1c+FLAIR, T1c" in card
    assert [c.ok for c in W.verify(str(env / "routed"))] == [True, True]


def test_router_all_regions_skips_the_base_and_its_errors_are_one_line(env):
    specs, (base, spec) = _two_exports(env)
    W.route_weights(specs[0], specs[1], "0101", env / "routed", "whole", regions=["wt", "TC", "ET"])
    loaded, _ = W.load_model(W.resolve(env / "routed" / "whole.safetensors"))
    p = torch.tensor([[False, True, False, True]])
    assert torch.allclose(_logits(loaded, p), _logits(spec, p), atol=1e-5)
    with pytest.raises(InputError, match="unknown region"):
        W.route_weights(specs[0], specs[1], "0101", env / "bad", "bad", regions=["NCR"])
    with pytest.raises(InputError, match="invalid modality subset"):
        W.route_weights(specs[0], specs[1], "0000", env / "bad", "bad")
    other, _ = _two_exports(env, patch_size=[48, 48, 48])
    with pytest.raises(InputError, match="patch_size differ"):
        W.route_weights(specs[0], other[1], "0101", env / "bad", "bad")
    assert not (env / "bad").exists()
    res = runner.invoke(app, ["weights", "route", specs[0], specs[1], "--subsets", "T1c+FLAIR", "-o",
                              str(env / "cli"), "--name", "viacli"])
    assert res.exit_code == 0 and "ET from m1 when exactly T1c+FLAIR is given" in res.output, res.output
    res = runner.invoke(app, ["weights", "route", str(env / "cli" / "viacli.safetensors"), specs[1], "--subsets",
                              "0100", "-o", str(env / "cli2"), "--name", "nested"])
    assert res.exit_code == 1 and "itself a combined model (router)" in res.output and "Traceback" not in res.output
    from mmtumor.train.trainer import load_init

    with pytest.raises(InputError, match="combined weights \\(router\\) cannot initialise training"):
        load_init(str(env / "cli" / "viacli.safetensors"), _method())
