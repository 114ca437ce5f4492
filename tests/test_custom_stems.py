"""Any stems, end to end: networks of custom targets train from each dataset layout, separate, export,
are scored and reported, and the shipped network fine-tunes into them.

Generated songs (`mssjax.data.generate`) with stems named guitar, piano, speech...; tiny networks
(configs/unet_tiny.py) trained a few steps: these tests check the machinery, not the quality.
"""

import json
import pathlib
import sys

import numpy as np
import pytest

from mssjax import audio, models, separators, weights
from mssjax.deploy import exported
from mssjax.training import loop as train_lib
from mssjax.__main__ import main
from mssjax.data import generate
from mssjax.separators import network

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the configs/ folder
from configs import unet_tiny  # pylint: disable=wrong-import-position

pytestmark = pytest.mark.slow

TWO = ("speech", "piano")
SIX = ("speech", "guitar", "piano", "organ", "kick", "bass")


def _songs(root, stems, layout, *, n_train=4, n_test=2, mixture=True):
  generate.write_songs(root, n_train=n_train, n_test=n_test, seconds=1.0, seed=3, stems=stems, layout=layout,
                       mixture=mixture)
  return root


def _config(root, targets, **data):
  config = unet_tiny.get_config()
  config.targets = targets
  config.data.name = "musdb"
  config.data.root = str(root)
  config.data.update(data)
  config.num_train_steps, config.checkpoint_every, config.eval_every = 2, 2, 2
  config.eval.metric = "global_sdr"
  return config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """``{name: (workdir, targets, data root)}``: a 2-stem and a 6-stem network from each new layout
  (track folders with a mixture file, track folders without one, stem folders)."""
  base = tmp_path_factory.mktemp("custom")
  runs = {
      "two_trackfolder": (TWO, "trackfolder", {}, True),
      "six_trackfolder": (SIX, "trackfolder", {"valid_method": "fraction", "valid_fraction": 0.25}, True),
      "two_trackfolder_nomix": (TWO, "trackfolder", {}, False),
      "six_trackfolder_nomix": (SIX, "trackfolder", {}, False),
      "two_sourcefolder": (TWO, "sourcefolder", {}, True),
      "six_sourcefolder": (SIX, "sourcefolder", {}, True),
  }
  out = {}
  for name, (targets, layout, data, mixture) in runs.items():
    root = _songs(base / f"songs_{name}", targets, layout, mixture=mixture)
    workdir = base / name
    train_lib.train_and_evaluate(_config(root, targets, **data), workdir)
    out[name] = (workdir, targets, root)
  return out


NAMES = ["two_trackfolder", "six_trackfolder", "two_trackfolder_nomix", "six_trackfolder_nomix",
         "two_sourcefolder", "six_sourcefolder"]


@pytest.mark.parametrize("name", NAMES)
def test_a_network_trains_on_its_own_stems(trained, name):
  workdir, targets, _ = trained[name]
  sep = separators.get("unet", {"checkpoint": str(workdir)})
  assert sep.targets == targets
  chunk = (0.1 * np.random.default_rng(0).standard_normal((2, 4096))).astype(np.float32)
  assert sep.separate_chunk(chunk).shape == (len(targets), 2, 4096)  # the network's outputs are its targets


@pytest.mark.parametrize("name", NAMES)
def test_separate_writes_files_named_after_the_targets(trained, name, tmp_path):
  workdir, targets, _ = trained[name]
  song = next((trained["six_trackfolder"][2] / "test").iterdir()) / "mixture.wav"
  assert main(["separate", str(song), "--checkpoint", str(workdir), "-o", str(tmp_path / "out"), "--quiet"]) == 0
  folder = tmp_path / "out" / "mixture"  # `separate` names a song's folder after its file
  assert sorted(p.stem for p in folder.glob("*.wav")) == sorted(targets)
  mixture, rate = audio.read(song)
  stem, stem_rate = audio.read(folder / f"{targets[0]}.wav")
  assert stem_rate == rate and stem[0].shape == mixture[0].shape


@pytest.mark.parametrize("name", ["two_trackfolder", "six_sourcefolder"])
def test_export_carries_the_targets_and_runs_without_mssjax(trained, name, tmp_path):
  workdir, targets, _ = trained[name]
  root = trained["six_trackfolder"][2]
  module = tmp_path / "two.jaxexport"
  assert main(["export", "--method", "unet", "--set", f"checkpoint={workdir}", "-o", str(module),
               "--platforms", "cpu"]) == 0
  document = json.loads(exported.metadata_path(module).read_text())
  assert document["targets"] == list(targets) and document["output"]["shape"][0] == len(targets)
  song = next((root / "test").iterdir()) / "mixture.wav"
  (mixture,), rate = audio.read(song)
  stems = exported.load(module).separate(mixture, sample_rate=rate)
  assert sorted(stems) == sorted(targets)
  want = separators.get("unet", {"checkpoint": str(workdir)})
  from mssjax import separate  # pylint: disable=import-outside-toplevel
  ours = separate.separate_array(want, mixture, sample_rate=rate)
  for t in targets:
    np.testing.assert_allclose(stems[t], ours[t], atol=1e-5)


def test_score_and_evaluate_follow_the_datasets_targets(trained, tmp_path):
  workdir, targets, root = trained["six_trackfolder"]
  estimates = tmp_path / "estimates"
  songs = sorted((root / "test").iterdir())
  assert main(["separate", *[str(s / "mixture.wav") for s in songs], "--checkpoint", str(workdir),
               "-o", str(estimates), "--quiet"]) == 0
  # `separate` names folders after the files: one folder per track, named as the track
  for song, folder in zip(songs, sorted(estimates.iterdir())):
    folder.rename(estimates / song.name) if folder.name != song.name else None
  assert main(["score", str(estimates), "--root", str(root), "-o", str(tmp_path / "scores"), "--quiet",
               "--no-report"]) == 0
  table = (tmp_path / "scores" / "results.csv").read_text()
  for t in targets:
    assert f",{t}," in table

  # mssjax evaluate on the tracks without a mixture file (their mixture is the sum of their stems); in this
  # process, so that the network's compiled programs are reused (tests/test_evaluate.py runs evaluate.py itself)
  workdir, targets, root = trained["six_trackfolder_nomix"]
  assert not list(root.rglob("mixture.*"))
  assert main(["evaluate", "--config", str(REPO / "configs" / "evaluate.py"), "--workdir", str(tmp_path / "eval"),
               "--config.methods=unet,irm2", f"--config.data.root={root}", "--config.data.subset=test",
               f"--config.separators.unet.checkpoint={workdir}", f"--config.separators.irm2.targets={targets!r}",
               "--config.report.n_audio_tracks=1", "--config.progress=False", "--quiet"]) == 0
  table = (tmp_path / "eval" / "results.csv").read_text()
  for t in targets:
    assert f",{t}," in table
  page = (tmp_path / "eval" / "report" / "index.html").read_text()
  assert all(f"<th>{t}</th>" in page for t in targets)
  assert all((tmp_path / "eval" / "unet" / "test" / f"{song.name}.json").is_file()
             for song in (root / "test").iterdir())


def test_the_shipped_network_seeds_new_targets(trained, tmp_path, capsys):
  """Fine-tuning: every parameter of the shipped network whose path and shape fit is loaded, the rest fresh
  (six targets for its four; one case: each compiles a train step of the full-size network)."""
  _, targets, root = trained["six_trackfolder"]
  shipped = weights.read(network.PRETRAINED)
  config = _config(root, targets, valid_method="fraction", valid_fraction=0.25)
  for field in ("stft", "model", "separate"):
    config[field] = shipped.config[field]
  config.sample_rate = shipped.config.sample_rate
  config.init_weights = str(network.PRETRAINED)
  config.optim.freeze = ("input_mean", "input_scale", "down")
  config.num_train_steps, config.eval_every, config.checkpoint_every = 1, 0, 1
  config.data.chunk_seconds, config.data.batch_size = 0.5, 1
  state = train_lib.train_and_evaluate(config, tmp_path / "finetuned")
  line = capsys.readouterr().out + capsys.readouterr().err
  assert "init_weights" in line and "fresh" in line and "head/kernel" in line
  got = weights.flatten({k: v for k, v in state.params.items()})
  like = weights.flatten_shapes(models.model_spec(config).abstract_params)
  assert sorted(got) == sorted(like)
  for name, value in shipped.params.items():
    if name.startswith("down/"):  # frozen and loaded: unchanged by the step
      np.testing.assert_array_equal(np.asarray(got[name]), value.astype(np.float32), err_msg=name)
  assert got["head/kernel"].shape != shipped.params["head/kernel"].shape
  sep = separators.get("unet", {"checkpoint": str(tmp_path / "finetuned"), "which": "latest"})
  assert sep.targets == targets
