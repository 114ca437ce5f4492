"""mssjax.metrics.evaluate / eval_mus_track: museval's API, layouts and numbers."""

import json
import shutil

import numpy as np
import pytest

from mssjax import metrics
from mssjax.data import load_tracks
from mssjax.errors import ParameterError

FRAME_TOL = 0.05  # dB, the agreement of mssjax.metrics.bss_eval_v4 with museval on every frame


def _signals(n=3 * 8000, n_sources=3, seed=0):
  rng = np.random.default_rng(seed)
  refs = rng.standard_normal((n_sources, n, 2))
  ests = refs + 0.3 * rng.standard_normal(refs.shape) + 0.2 * refs[::-1]
  return refs, ests


def _assert_frames_close(ours, theirs):
  ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
  assert ours.shape == theirs.shape
  np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
  finite = ~np.isnan(theirs)
  assert np.abs(ours[finite] - theirs[finite]).max() < FRAME_TOL


def test_evaluate_has_musevals_signature_and_layout():
  museval = pytest.importorskip("museval")
  refs, ests = _signals()
  ours = metrics.evaluate(list(refs), ests[:, :-500], win=8000, hop=4000)  # short estimates: padded
  theirs = museval.evaluate(list(refs), ests[:, :-500], win=8000, hop=4000)
  assert len(ours) == 4
  for a, b in zip(ours, theirs):
    assert a.shape == (3, 5)
    _assert_frames_close(a, b)


def test_evaluate_refuses_v3_and_unpadded_mismatch():
  refs, ests = _signals()
  with pytest.raises(ParameterError, match="mode='v3' is not supported"):
    metrics.evaluate(refs, ests, mode="v3")
  with pytest.raises(ParameterError, match="must match"):
    metrics.evaluate(refs, ests[:, :-10], win=8000, hop=8000, padding=False)


class _FakeMusdbTrack:
  """What museval reads of a ``musdb.Track``: targets[name].audio, rate, name, subset."""

  class _Target:
    def __init__(self, audio):
      self.audio = audio

  def __init__(self, sources, rate=8000):
    self.targets = {n: self._Target(x) for n, x in sources.items()}
    self.rate, self.name, self.subset = rate, "Fake - Track", "test"


def test_eval_mus_track_writes_musevals_json(tmp_path):
  museval = pytest.importorskip("museval")
  refs, ests = _signals(n_sources=4)
  names = ["vocals", "drums", "bass", "other", "accompaniment"]
  sources = dict(zip(names, list(refs) + [refs[1] + refs[2] + refs[3]]))
  estimates = dict(zip(names, list(ests) + [ests[1] + ests[2] + ests[3]]))
  estimates["unknown"] = ests[0]  # ignored, as museval ignores it
  track = _FakeMusdbTrack(sources)
  ours = metrics.eval_mus_track(track, estimates, output_dir=tmp_path, win=0.5, hop=0.5)
  theirs = json.loads(museval.eval_mus_track(track, estimates, win=0.5, hop=0.5).json)
  assert [t["name"] for t in ours.scores["targets"]] == [t["name"] for t in theirs["targets"]] == [
      "drums", "bass", "other", "vocals", "accompaniment"]
  for a, b in zip(ours.scores["targets"], theirs["targets"]):
    assert [f["time"] for f in a["frames"]] == [f["time"] for f in b["frames"]]
    for m in ("SDR", "SIR", "SAR", "ISR"):
      _assert_frames_close([f["metrics"][m] for f in a["frames"]], [f["metrics"][m] for f in b["frames"]])
  written = tmp_path / "test" / "Fake - Track.json"
  assert json.loads(written.read_text()) == json.loads(ours.json)
  methods = museval.MethodStore()
  methods.add_eval_dir(tmp_path)
  assert set(methods.df["target"]) == {"vocals", "drums", "bass", "other", "accompaniment"}
  assert "vocals" in repr(ours) and set(ours.medians()) == set(names)


def test_eval_mus_track_needs_two_targets():
  refs, ests = _signals(n_sources=2)
  track = _FakeMusdbTrack({"vocals": refs[0], "drums": refs[1]})
  with pytest.raises(ParameterError, match="Fake - Track: at least two estimates"):
    metrics.eval_mus_track(track, {"vocals": ests[0]})


@pytest.mark.realdata
def test_eval_mus_track_on_real_tracks_matches_museval(musdb_root, tmp_path):
  """A ``musdb.Track`` (museval's own input) and an mssjax track give museval's numbers."""
  if shutil.which("ffmpeg") is None:
    pytest.skip("musdb needs the ffmpeg program")
  musdb = pytest.importorskip("musdb")
  museval = pytest.importorskip("museval")
  name = "AM Contra - Heart Peripheral"
  (tmp_path / "root" / "test").mkdir(parents=True)
  (tmp_path / "root" / "test" / f"{name}.stem.mp4").symlink_to(musdb_root / "test" / f"{name}.stem.mp4")
  track, = musdb.DB(root=str(tmp_path / "root"), subsets="test")
  rng = np.random.default_rng(0)
  mix = track.audio
  estimates = {"vocals": 0.7 * track.targets["vocals"].audio + 0.1 * mix,
               "accompaniment": 0.8 * track.targets["accompaniment"].audio + 1e-3 * rng.standard_normal(mix.shape)}
  theirs = json.loads(museval.eval_mus_track(track, estimates).json)
  ours = metrics.eval_mus_track(track, estimates).scores
  mine, = load_tracks(tmp_path / "root")
  native = metrics.eval_mus_track(mine, estimates).scores  # mssjax decodes as musdb does
  for a, b, c in zip(ours["targets"], theirs["targets"], native["targets"]):
    assert a["name"] == b["name"] == c["name"]
    for m in ("SDR", "SIR", "SAR", "ISR"):
      _assert_frames_close([f["metrics"][m] for f in a["frames"]], [f["metrics"][m] for f in b["frames"]])
      _assert_frames_close([f["metrics"][m] for f in c["frames"]], [f["metrics"][m] for f in b["frames"]])
