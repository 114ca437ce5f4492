"""evaluate_lib / evaluate.py: the loop on generated songs, skip on re-run, failures isolated."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from mssjax import TARGETS, audio, separators
from mssjax.evaluation import loop as evaluate_lib
from mssjax.errors import ParameterError
from mssjax.data import load_tracks
from mssjax.metrics import bss_eval_v4, store

REPO = pathlib.Path(__file__).resolve().parents[1]


def _config(**data):
  sys.path.insert(0, str(REPO))
  from configs import evaluate as evaluate_config  # pylint: disable=import-outside-toplevel
  config = evaluate_config.get_config()
  config.methods = "irm2,mixture"
  config.progress = False
  config.data.n_generated = 2
  config.data.seconds = 3.0
  config.report.n_audio_tracks = 1
  config.data.update(data)
  return config


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("evaluate")
  return workdir, evaluate_lib.evaluate(_config(), workdir)


def test_offline_run_writes_museval_json_tables_and_report(first_run):
  museval = pytest.importorskip("museval")
  workdir, summary = first_run
  assert summary["done"] == 4 and not summary["failures"]
  for method in ("irm2", "mixture"):
    files = sorted((workdir / method / "test").glob("*.json"))
    assert len(files) == 2
    methods = museval.MethodStore()
    methods.add_eval_dir(workdir / method)
    assert set(methods.df["target"]) == set(TARGETS)
  assert len(summary["rows"]) == 8 and (workdir / "results.md").exists()
  assert summary["report"].exists()
  irm_vocals = [r for r in summary["rows"] if r["method"] == "irm2" and r["target"] == "vocals"][0]
  mix_vocals = [r for r in summary["rows"] if r["method"] == "mixture" and r["target"] == "vocals"][0]
  assert irm_vocals["SDR"] > mix_vocals["SDR"] + 5      # the oracle beats the mixture by far
  assert irm_vocals["gflops_per_second"] > 0.01 and mix_vocals["gflops_per_second"] == 0
  assert irm_vocals["peak_memory_mb"] > mix_vocals["peak_memory_mb"] > 0


def test_complexity_is_that_of_the_program_the_separation_compiled(first_run):
  """Measured after the first separation, on its compiled chunk (no second compilation), and recorded."""
  workdir, _ = first_run
  track = load_tracks(workdir / "songs", subset="test")[0]
  for name in ("mixture", "irm2"):
    separator = separators.get(name)
    evaluate_lib.separate_track(separator, track)
    compiled = dict(separator._compiled)  # pylint: disable=protected-access
    cost = evaluate_lib.method_complexity(separator, track)
    assert separator._compiled == compiled  # pylint: disable=protected-access
    meta = json.loads(store.meta_path(workdir, name, "test", track.name).read_text())
    assert meta["complexity"] == cost and meta["needs_references"] == (name == "irm2")
    assert cost["chunk_seconds"] == (track.n_samples / 44100 if name == "irm2" else separator.chunk_seconds)


def test_json_holds_bss_eval_v4_of_the_estimates(first_run):
  workdir, _ = first_run
  track = load_tracks(workdir / "songs", subset="test")[0]
  refs = np.transpose(track.targets(), (0, 2, 1))
  mix = np.repeat(track.mixture().T[None], 4, axis=0)
  expected = bss_eval_v4(refs, mix)
  with open(store.track_path(workdir, "mixture", "test", track.name)) as f:
    doc = json.load(f)
  for i, target in enumerate(doc["targets"]):
    assert target["name"] == TARGETS[i]
    sdr = [fr["metrics"]["SDR"] for fr in target["frames"]]
    np.testing.assert_allclose(sdr, expected["SDR"][i], atol=1e-5)


def test_rerun_skips_finished_tracks(first_run):
  workdir, _ = first_run
  summary = evaluate_lib.evaluate(_config(), workdir)
  assert summary["done"] == 0 and summary["skipped"] == 4


def test_results_stored_before_complexity_was_measured_get_it_on_a_rerun(first_run, tmp_path):
  """An older workdir's results (no "complexity" in their meta) get it measured once, without a separation."""
  import shutil  # pylint: disable=import-outside-toplevel
  workdir, _ = first_run
  old = tmp_path / "old"
  shutil.copytree(workdir, old)
  for meta in old.glob("*/meta/test/*.json"):
    document = json.loads(meta.read_text())
    del document["complexity"], document["needs_references"]
    meta.write_text(json.dumps(document))
  assert np.isnan(store.complexity(old, "irm2")["gflops_per_second"])
  summary = evaluate_lib.evaluate(_config(root=str(workdir / "songs")), old)
  assert summary["done"] == 0  # nothing separated again
  for name in ("irm2", "mixture"):
    assert store.complexity(old, name)["gflops_per_second"] == store.complexity(workdir, name)["gflops_per_second"]
  assert sum("complexity" in json.loads(m.read_text()) for m in old.glob("irm2/meta/test/*.json")) == 1
  assert store.uses_references(old, "irm2") and not store.uses_references(old, "mixture")
  assert evaluate_lib.fill_complexity(old, {"irm2": separators.get("irm2")},
                                      load_tracks(workdir / "songs", subset="test"), subset="test") == []


def test_failing_track_is_reported_and_the_others_kept(first_run, tmp_path):
  """A track whose bass is silent throughout: BSSEval is undefined (museval raises too)."""
  workdir, _ = first_run
  import shutil  # pylint: disable=import-outside-toplevel
  root = tmp_path / "songs"
  shutil.copytree(workdir / "songs", root)
  bad = sorted((root / "test").iterdir())[1]
  audio.save(bad / "bass.wav", np.zeros_like(audio.load(bad / "bass.wav")), subtype="PCM_16")
  summary = evaluate_lib.evaluate(_config(root=str(root)), tmp_path / "out")
  assert summary["done"] == 2 and len(summary["failures"]) == 2
  assert {f["track"] for f in summary["failures"]} == {bad.name}
  assert all("silent throughout" in f["error"] for f in summary["failures"])
  assert len(list((tmp_path / "out" / "irm2" / "test").glob("*.json"))) == 1
  assert json.loads((tmp_path / "out" / "failures.json").read_text())[0]["track"] == bad.name
  assert "Failures" in summary["report"].read_text()


def test_another_data_root_in_the_same_workdir_scores_again(first_run, tmp_path):
  # #36 case 3: evaluate.py with one workdir and another data.root kept the first root's numbers and
  # counted its tracks.
  import shutil  # pylint: disable=import-outside-toplevel
  workdir = tmp_path / "work"
  shutil.copytree(first_run[0], workdir)
  root = tmp_path / "other"
  kept, dropped = sorted((workdir / "songs" / "test").iterdir())
  shutil.copytree(kept, root / "test" / kept.name)
  vocals = audio.load(root / "test" / kept.name / "vocals.wav")
  audio.save(root / "test" / kept.name / "vocals.wav", 0.5 * vocals, subtype="PCM_16")  # other references
  config = _config(root=str(root))
  config.report.enabled = False
  summary = evaluate_lib.evaluate(config, workdir)
  assert summary["done"] == 2 and summary["skipped"] == 0 and not summary["failures"]
  assert {r["n_tracks"] for r in summary["rows"]} == {1}
  meta = json.loads(store.meta_path(workdir, "irm2", "test", kept.name).read_text())
  assert meta["references"]["path"] == str((root / "test" / kept.name).resolve())
  assert store.track_path(workdir, "irm2", "test", dropped.name).is_file()  # left, but not counted
  again = evaluate_lib.evaluate(config, workdir)
  assert again["done"] == 0 and again["skipped"] == 2


def test_built_separators_are_stored_under_their_given_names(first_run, tmp_path):
  """Two networks of one architecture side by side (benchmarks/architectures.py): here irm2 as "oracle"."""
  from mssjax import separators  # pylint: disable=import-outside-toplevel
  workdir, _ = first_run
  config = _config(root=str(workdir / "songs"))
  config.methods = "nope"  # ignored: the separators are given
  config.report.enabled = False
  summary = evaluate_lib.evaluate(config, tmp_path, methods={"oracle": separators.get("irm2")})
  assert summary["done"] == 2 and {r["method"] for r in summary["rows"]} == {"oracle"}
  track = load_tracks(workdir / "songs", subset="test")[0].name
  given = json.loads(store.track_path(tmp_path, "oracle", "test", track).read_text())
  registered = json.loads(store.track_path(workdir, "irm2", "test", track).read_text())
  assert given["targets"] == registered["targets"]
  with pytest.raises(ParameterError, match="methods is empty"):
    evaluate_lib.evaluate(config, tmp_path, methods={})


def test_unknown_method_is_a_clear_error_before_any_work(tmp_path):
  config = _config()
  config.methods = "irm2,nope"
  with pytest.raises(ParameterError, match=r"unknown method\(s\) \['nope'\]; valid names are"):
    evaluate_lib.evaluate(config, tmp_path)
  assert not (tmp_path / "songs").exists()


def test_score_track_pads_short_estimates_like_museval(monkeypatch):
  seen = {}

  def fake_bss_eval_v4(refs, ests, *, window, hop):
    seen.update(refs=refs, ests=ests, window=window, hop=hop)
    return {m: np.zeros((4, 3)) for m in ("SDR", "ISR", "SIR", "SAR")}

  monkeypatch.setattr(evaluate_lib.bss_eval, "bss_eval_v4", fake_bss_eval_v4)
  rng = np.random.default_rng(0)
  refs = rng.standard_normal((4, 2, 30000)).astype(np.float32)
  for estimates in (refs[..., :29000] * 0.5, np.concatenate([refs, refs[..., :700]], axis=-1)):
    scores = evaluate_lib.score_track(dict(zip(TARGETS, refs)), dict(zip(TARGETS, estimates)), sample_rate=10000)
    assert list(scores) == list(TARGETS) and seen["window"] == seen["hop"] == 10000
    _, expected = __import__("museval").pad_or_truncate(np.transpose(refs, (0, 2, 1)),
                                                        np.transpose(estimates, (0, 2, 1)))
    np.testing.assert_array_equal(seen["ests"], expected)
    np.testing.assert_array_equal(seen["refs"], np.transpose(refs, (0, 2, 1)))


@pytest.mark.slow
def test_entry_point_runs(tmp_path):
  songs = tmp_path / "songs"
  from mssjax.data import generate  # pylint: disable=import-outside-toplevel
  generate.write_songs(songs, n_train=0, n_test=1, seconds=2.0)
  cmd = [sys.executable, str(REPO / "evaluate.py"), "--config", str(REPO / "configs" / "evaluate.py"),
         "--workdir", str(tmp_path / "wd"), "--config.methods=mixture", f"--config.data.root={songs}",
         "--config.data.subset=test", "--config.progress=False"]
  out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300, check=False)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "1 evaluated, 0 skipped, 0 failed" in out.stdout
  assert (tmp_path / "wd" / "report" / "index.html").exists()


# --- the whole path against museval on the musdb package's decode ------------------------------------

FIELD_TRACK = "Cristina Vane - So Easy"
FIELD_TOL = 0.01  # dB, every frame of every metric; measured 6e-4 (the decoders differ by 1 LSB on 0.02 % of samples)


@pytest.mark.realdata
@pytest.mark.slow
def test_real_pipeline_matches_museval_on_musdb_decoded_tracks(musdb_root, tmp_path):
  """evaluate.py's SDR, SIR, SAR and ISR on real previews equal museval's on what ``musdb`` decodes.

  The estimates evaluate.py saved are scored again by ``museval.eval_mus_track`` on ``musdb.DB``'s
  tracks: every frame of every metric agrees. Decoding the previews as float (the old reader)
  moves SIR by several dB on the same estimates; that is checked too, so the test can fail.
  """
  import shutil  # pylint: disable=import-outside-toplevel
  if shutil.which("ffmpeg") is None:
    pytest.skip("musdb needs the ffmpeg program")
  musdb = pytest.importorskip("musdb")
  museval = pytest.importorskip("museval")
  root = tmp_path / "musdb"
  (root / "test").mkdir(parents=True)
  (root / "test" / f"{FIELD_TRACK}.stem.mp4").symlink_to(musdb_root / "test" / f"{FIELD_TRACK}.stem.mp4")
  config = _config(root=str(root))
  config.methods = "irm2,mixture"
  config.save_estimates = True
  config.report.enabled = False
  workdir = tmp_path / "eval"
  summary = evaluate_lib.evaluate(config, workdir)
  assert summary["done"] == 2 and not summary["failures"]
  worst = {m: 0.0 for m in store.JSON_METRICS}
  float_gap = 0.0
  for track in musdb.DB(root=str(root), subsets="test"):
    for method in ("irm2", "mixture"):
      folder = workdir / method / "estimates" / "test" / track.name
      estimates = {t: audio.read(folder / f"{t}.wav")[0][0].T for t in TARGETS}
      assert estimates["vocals"].shape == track.audio.shape == (300032, 2)
      reference = json.loads(museval.eval_mus_track(track, estimates).json)
      ours = json.loads((workdir / method / "test" / f"{track.name}.json").read_text())
      for theirs, mine in zip(reference["targets"], ours["targets"]):
        assert theirs["name"] == mine["name"] and len(theirs["frames"]) == len(mine["frames"]) == 6
        for a, b in zip(theirs["frames"], mine["frames"]):
          for m in store.JSON_METRICS:
            x, y = a["metrics"][m], b["metrics"][m]
            assert np.isnan(x) == np.isnan(y), (track.name, method, m)
            if not np.isnan(x):
              worst[m] = max(worst[m], abs(x - y))
      if method == "irm2":  # the old reader's samples: the same estimates scored on a float decode
        old = load_tracks(root, decoding="float")[0].targets()
        n = old.shape[-1]
        refs, ests = np.transpose(old, (0, 2, 1)), np.stack([estimates[t][:n] for t in TARGETS])
        scores = bss_eval_v4(refs, ests)
        theirs = np.array([[f["metrics"]["SIR"] for f in t["frames"]] for t in reference["targets"]])
        float_gap = np.nanmax(np.abs(scores["SIR"] - theirs))
  print(f"largest frame difference to museval on musdb's decode (dB): {worst}; "
        f"SIR on a float decode: {float_gap:.2f} dB away")
  assert max(worst.values()) < FIELD_TOL, worst
  assert float_gap > 1.0
