"""mssjax.metrics.store: museval-format JSON (museval reads it back) and SiSEC aggregation."""

import json
import math
import os
import pathlib

import jsonschema
import numpy as np
import pytest

museval = pytest.importorskip("museval")

from mssjax.errors import ParameterError  # noqa: E402
from mssjax.metrics import store  # noqa: E402


def _scores(rng, n_frames, targets=("vocals", "drums", "bass", "other")):
  out = {}
  for t in targets:
    values = {m: rng.normal(5, 3, n_frames) for m in ("SDR", "ISR", "SIR", "SAR")}
    values["SDR"][1] = np.nan
    values["SAR"][0] = np.inf
    out[t] = values
  return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  root = tmp_path_factory.mktemp("store")
  rng = np.random.default_rng(0)
  for method in ("a", "b"):
    for i in range(3):
      cost = {"complexity": {"flops_per_second": 2.5e9, "memory_bytes": 3_000_000, "chunk_seconds": 7.0,
                             "loops_counted_once": 0}} if method == "a" else {}  # b: stored before complexity
      store.save_track(root, method, "test", f"Track {i}", _scores(rng, 5 + i),
                       meta={"audio_seconds": 10.0, "separation_seconds": 2.0 + i, "n_parameters": 7, **cost})
  return root


def test_json_validates_against_museval_schema(workdir):
  with open(museval.__path__[0] + "/musdb.schema.json") as f:
    schema = json.load(f)
  with open(store.track_path(workdir, "a", "test", "Track 0")) as f:
    doc = json.load(f)
  jsonschema.validate(doc, schema)
  frame = doc["targets"][0]["frames"][0]
  assert set(frame) == {"time", "duration", "metrics"} and set(frame["metrics"]) == {"SDR", "SIR", "SAR", "ISR"}
  assert math.isnan(frame["metrics"]["SAR"])          # inf is written as NaN, as museval does
  assert math.isnan(doc["targets"][0]["frames"][1]["metrics"]["SDR"])


def test_quantised_like_museval_trackstore():
  values = {m: [1.23456789, -np.inf, 2.0] for m in ("SDR", "ISR", "SIR", "SAR")}
  ours = store.track_json({"vocals": values})
  theirs = museval.TrackStore("x")
  theirs.add_target("vocals", values)
  theirs = json.loads(theirs.json)
  for a, b in zip(ours["targets"][0]["frames"], theirs["targets"][0]["frames"]):
    assert a["time"] == b["time"] and a["duration"] == b["duration"]
    for m in ("SDR", "ISR", "SIR", "SAR"):
      np.testing.assert_equal(a["metrics"][m], b["metrics"][m])


def test_museval_reads_the_workdir_and_aggregates_the_same(workdir):
  methods = museval.MethodStore()
  for method in ("a", "b"):
    methods.add_eval_dir(workdir / method)
  expected = methods.agg_frames_tracks_scores()
  ours = store.aggregate(store.load_scores(workdir, ["a", "b"]))
  assert len(expected) == 2 * 4 * 4
  for (method, target, metric), value in expected.items():
    assert ours[(method, target)][metric] == pytest.approx(value, abs=1e-9)
  assert ours[("a", "vocals")]["n_tracks"] == 3
  evals = museval.EvalStore()
  evals.add_eval_dir(workdir / "a")
  assert set(evals.df["track"]) == {"Track 0", "Track 1", "Track 2"}


def test_tables_have_complexity_columns(workdir):
  rows = store.write_tables(workdir, ["a", "b"])
  assert len(rows) == 8
  assert rows[0]["n_parameters"] == 7
  assert rows[0]["seconds_per_second"] == pytest.approx((2 + 3 + 4) / 30)
  assert rows[0]["gflops_per_second"] == 2.5 and rows[0]["peak_memory_mb"] == 3.0
  assert math.isnan(rows[4]["gflops_per_second"]) and math.isnan(rows[4]["peak_memory_mb"])
  csv_text = (workdir / "results.csv").read_text().splitlines()
  assert csv_text[0] == ",".join(store.TABLE_COLUMNS) and len(csv_text) == 9
  md = (workdir / "results.md").read_text().splitlines()
  assert md[:3] == ["SDR (dB)", "", "| method | vocals | drums | bass | other | average |"] and len(md) == 17
  assert md[7].startswith("| method | target | SDR")
  assert md[7].endswith("| s / s audio | GFLOPs / s audio | XLA peak MB |")
  assert md[9].endswith("| 2.500 | 3.000 |") and md[13].endswith("| nan | nan |")


def test_pivot_has_methods_as_rows_and_averages_finite_targets():
  rows = [{"method": m, "target": t, "SDR": v, "SIR": 0.0, "SAR": 0.0, "ISR": 0.0}
          for m, t, v in [("a", "bass", 1.0), ("a", "vocals", 3.0), ("b", "vocals", math.nan), ("b", "guitar", 2.0)]]
  targets, pivot = store.pivot_rows(rows)
  assert targets == ["vocals", "bass", "guitar"]
  assert pivot[0] == {"method": "a", "bass": 1.0, "vocals": 3.0, "average": 2.0}
  assert pivot[1]["average"] == 2.0 and "bass" not in pivot[1]
  assert "| b | nan | - | 2.000 | 2.000 |" in store.markdown_pivot(rows)
  with pytest.raises(ParameterError, match="metric='sdr'"):
    store.pivot_rows(rows, "sdr")


def test_aggregate_skips_nan_frames_and_all_nan_tracks():
  rows = [{"method": "m", "track": "t1", "target": "vocals", "metric": "SDR", "frames": np.array([1.0, np.nan, 3.0])},
          {"method": "m", "track": "t2", "target": "vocals", "metric": "SDR", "frames": np.array([np.nan])},
          {"method": "m", "track": "t3", "target": "vocals", "metric": "SDR", "frames": np.array([6.0])}]
  assert store.aggregate(rows)[("m", "vocals")]["SDR"] == pytest.approx(4.0)


def test_writes_are_atomic_and_follow_the_umask(tmp_path, monkeypatch):
  path = store.save_track(tmp_path, "m", "test", "T", _scores(np.random.default_rng(1), 3), meta={"x": math.nan})
  assert sorted(p.name for p in (tmp_path / "m" / "test").iterdir()) == ["T.json"]
  assert math.isnan(json.loads(store.meta_path(tmp_path, "m", "test", "T").read_text())["x"])
  mask = os.umask(0o022)
  os.umask(mask)
  assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask
  before = path.read_bytes()

  def crash(self, text, *args, **kwargs):
    with open(self, "w") as handle:  # half a file, then the crash
      handle.write(text[:10])
    raise KeyboardInterrupt

  monkeypatch.setattr(pathlib.Path, "write_text", crash)
  with pytest.raises(KeyboardInterrupt):
    store.write_json(path, {"targets": []})
  assert path.read_bytes() == before
  assert sorted(p.name for p in path.parent.iterdir()) == ["T.json"]
  assert [r["track"] for r in store.load_scores(tmp_path, ["m"])][:1] == ["T"]
