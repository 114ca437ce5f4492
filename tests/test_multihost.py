"""Multi-process runs on one machine: JAX processes joined by a coordinator on 127.0.0.1.

Each process has 2 forced CPU devices and talks to the others through gloo
(`mssjax.distributed`), so 2 processes see 4 global devices, as the hosts of a
cluster would. Every run has a fresh port and a bounded time, and
`mssjax._cluster.local_cluster` kills every child it started.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from mssjax import checkpoints, distributed, models

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _cluster  # noqa: E402  # pylint: disable=wrong-import-position
from mssjax.errors import ParameterError

REPO = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT = 240
TRAIN_FLAGS = ("--config.data.batch_size=4",)  # 4 steps, checkpoints at 2 and 4, validation at 4
STEPS = 4


def _env(cache: pathlib.Path) -> dict[str, str]:
  """Tests turn the compilation cache off (conftest); these runs share one in ``cache`` (same programs)."""
  return dict(os.environ, MSSJAX_COMPILATION_CACHE="1", MSSJAX_COMPILATION_CACHE_DIR=str(cache))


def _train(workdir: pathlib.Path, cache: pathlib.Path, *, num_processes: int, devices_per_process: int,
           flags: tuple[str, ...] = TRAIN_FLAGS) -> list[_cluster.LocalProcess]:
  argv = [sys.executable, "train.py", "--config", "configs/unet_tiny.py", "--workdir", str(workdir), *flags]
  if num_processes > 1:
    argv.append("--multihost")
  out = _cluster.run_local_cluster(argv, num_processes=num_processes, devices_per_process=devices_per_process,
                                      timeout=TIMEOUT, cwd=REPO, env=_env(cache))
  for i, process in enumerate(out):
    assert process.returncode == 0, f"process {i}:\n{process.stderr[-3000:]}"
  return out


def _params(workdir: pathlib.Path, which: str = "latest") -> checkpoints.RestoredParams:
  config = checkpoints.read_config(workdir)
  return checkpoints.restore_params(workdir, models.model_spec(config).abstract_params, which=which)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return tmp_path_factory.mktemp("jax_cache")


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, cache):
  """configs/unet_tiny.py, 4 steps of batch 4 on 2 processes x 2 devices."""
  workdir = tmp_path_factory.mktemp("two_processes")
  _train(workdir, cache, num_processes=2, devices_per_process=2)
  return workdir


# --- the cluster variables --------------------------------------------------------------------------


def test_cluster_from_env():
  assert distributed.cluster_from_env({}) is None
  env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "3"}
  assert distributed.cluster_from_env(env) == {"coordinator_address": "10.0.0.1:1234", "num_processes": 4,
                                               "process_id": 3}
  with pytest.raises(ParameterError, match="JAX_NUM_PROCESSES, JAX_PROCESS_ID not"):
    distributed.cluster_from_env({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"})
  with pytest.raises(ParameterError, match="JAX_PROCESS_ID=4 must be below JAX_NUM_PROCESSES=4"):
    distributed.cluster_from_env({**env, "JAX_PROCESS_ID": "4"})
  with pytest.raises(ParameterError, match="JAX_NUM_PROCESSES='two' must be a non-negative integer"):
    distributed.cluster_from_env({**env, "JAX_NUM_PROCESSES": "two"})


def test_half_set_variables_fail_before_jax_starts(monkeypatch):
  """train.py and evaluate.py print this as one ``error:`` line (a `ParameterError`, exit 2)."""
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1")
  monkeypatch.delenv("JAX_NUM_PROCESSES", raising=False)
  monkeypatch.delenv("JAX_PROCESS_ID", raising=False)
  with pytest.raises(ParameterError, match="JAX_COORDINATOR_ADDRESS set but JAX_NUM_PROCESSES, JAX_PROCESS_ID not"):
    distributed.initialize()
  from mssjax.errors import USER_ERRORS  # pylint: disable=import-outside-toplevel
  assert issubclass(ParameterError, USER_ERRORS)
  # None set and no cluster to detect (jax.distributed.initialize's "Number of processes must be defined").
  # In a fresh interpreter: jax.distributed.initialize refuses to run once this one's backends are up.
  env = {k: v for k, v in os.environ.items()
         if k not in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "SLURM_JOB_ID",
                      "OMPI_MCA_orte_hnp_uri", "KUBERNETES_SERVICE_HOST")}
  code = ("from mssjax import distributed\nfrom mssjax.errors import ParameterError\n"
          "try:\n  distributed.initialize()\nexcept ParameterError as e:\n  print('ParameterError:', e)\n"
          "import jax\nprint('initialized:', jax.distributed.is_initialized())\n")
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                       check=True).stdout
  assert re.search(r"ParameterError: no cluster found .*: set JAX_COORDINATOR_ADDRESS", out), out
  assert "initialized: False" in out


# --- training ---------------------------------------------------------------------------------------


def test_two_processes_train_as_one_process_of_as_many_devices(two_process_run, tmp_path, cache):
  single = tmp_path / "one_process"
  _train(single, cache, num_processes=1, devices_per_process=4)
  two, one = _params(two_process_run), _params(single)
  assert two.step == one.step == STEPS
  for (path, a), (_, b) in zip(_leaves(two.params), _leaves(one.params)):
    if path.endswith("/conv/bias") and path.startswith("/down/"):
      # A bias followed by a normalisation has a zero gradient: it moves only by rounding noise,
      # which Adam scales up (values near 1e-4, against 1e-2 for the other biases).
      np.testing.assert_allclose(a, b, atol=2e-4, err_msg=path)
    else:
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=path)


def _leaves(tree: dict, prefix: str = "") -> list[tuple[str, np.ndarray]]:
  out = []
  for key in sorted(tree):
    value = tree[key]
    out += _leaves(value, f"{prefix}/{key}") if isinstance(value, dict) else [(f"{prefix}/{key}", value)]
  return out


def test_only_process_zero_writes_events(two_process_run):
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=import-outside-toplevel
  files = sorted(two_process_run.glob("events.out.tfevents.*"))
  assert len(files) == 1, files
  events = event_accumulator.EventAccumulator(str(files[0]))
  events.Reload()
  # Two writers (one file each, or both in one file of the same second) would repeat steps.
  assert [e.step for e in events.Scalars("train/loss")] == list(range(1, STEPS + 1))
  assert [e.step for e in events.Scalars("valid/sdr/mean")] == [STEPS]


def test_killed_run_resumes_exactly(two_process_run, tmp_path, cache):
  workdir = tmp_path / "killed"
  argv = [sys.executable, "train.py", "--config", "configs/unet_tiny.py", "--workdir", str(workdir),
          "--multihost", *TRAIN_FLAGS]
  with _cluster.local_cluster(argv, num_processes=2, devices_per_process=2, cwd=REPO,
                                 env=_env(cache)) as processes:
    deadline = time.monotonic() + TIMEOUT
    while not _saved_steps(workdir) and time.monotonic() < deadline:
      assert all(p.poll() is None for p in processes), _cluster.read_output(processes[0]).stderr[-3000:]
      time.sleep(0.02)
    for p in processes:
      p.kill()
  killed_at = _saved_steps(workdir)
  assert killed_at and max(killed_at) < STEPS, killed_at
  _train(workdir, cache, num_processes=2, devices_per_process=2)
  resumed, uninterrupted = _params(workdir), _params(two_process_run)
  assert resumed.step == uninterrupted.step == STEPS
  for (path, a), (_, b) in zip(_leaves(resumed.params), _leaves(uninterrupted.params)):
    np.testing.assert_array_equal(a, b, err_msg=path)


def _saved_steps(workdir: pathlib.Path) -> list[int]:
  """The steps whose checkpoint orbax has finished writing."""
  folder = workdir / "checkpoints"
  return sorted(int(p.name) for p in folder.glob("*") if p.name.isdigit() and (p / "commit_success.txt").exists()
                ) if folder.is_dir() else []


def test_checkpoint_restores_in_one_process_and_separates(two_process_run):
  from mssjax import separators  # pylint: disable=import-outside-toplevel
  separator = separators.get("unet", {"checkpoint": str(two_process_run)})
  mixture = np.random.default_rng(0).standard_normal((2, 22050)).astype(np.float32) * 0.1
  stems = separator(mixture)
  assert sorted(stems) == ["bass", "drums", "other", "vocals"]
  assert all(np.asarray(s).shape == (2, 22050) and np.all(np.isfinite(s)) for s in stems.values())
  best = _params(two_process_run, which="best")
  assert best.which == "best" and best.step == STEPS


def test_processes_read_disjoint_shards_that_cover_the_data(cluster_checks):
  seen = [json.loads((cluster_checks / f"grain-{i}.json").read_text()) for i in range(2)]
  assert len(seen[0]) == len(seen[1]) == 4 and not set(seen[0]) & set(seen[1])
  assert sorted(seen[0] + seen[1]) == list(range(8))
  # The synthetic loader: the processes' batches, side by side, are one process's global batches.
  from configs import unet_tiny  # pylint: disable=import-outside-toplevel
  from mssjax.data import loaders  # pylint: disable=import-outside-toplevel
  config = unet_tiny.get_config()
  stream = loaders.SyntheticIterator(seconds=config.data.chunk_seconds, batch_size=4, seed=int(config.seed),
                                     sample_rate=config.sample_rate)
  expected = np.stack([next(stream)["mixture"] for _ in range(3)])
  shards = [np.load(cluster_checks / f"synthetic-{i}.npy") for i in range(2)]
  np.testing.assert_array_equal(np.concatenate(shards, axis=1), expected)


# --- evaluation, scoring and separation -------------------------------------------------------------

EVAL_FLAGS = ("--config.methods=irm2,mixture", "--config.data.n_generated=4", "--config.data.seconds=3.0",
              "--config.report.n_audio_tracks=1", "--config.progress=False")


def _evaluate(workdir: pathlib.Path, cache: pathlib.Path) -> list[_cluster.LocalProcess]:
  argv = [sys.executable, "evaluate.py", "--config", "configs/evaluate.py", "--workdir", str(workdir),
          "--multihost", *EVAL_FLAGS]
  out = _cluster.run_local_cluster(argv, num_processes=2, devices_per_process=2, timeout=TIMEOUT, cwd=REPO,
                                      env=_env(cache))
  for i, process in enumerate(out):
    assert process.returncode == 0, f"process {i}:\n{process.stderr[-3000:]}"
  return out


def _results(workdir: pathlib.Path) -> dict[str, dict]:
  return {str(p.relative_to(workdir)): json.loads(p.read_text())["targets"]
          for p in sorted(workdir.glob("*/test/*.json"))}


def test_evaluate_multihost_splits_tracks_and_equals_one_process(tmp_path, cache):
  workdir = tmp_path / "two_processes"
  out = _evaluate(workdir, cache)
  # Process 0 prints the totals, process 1 its own share (tracks 1 and 3): every result written once.
  assert "8 evaluated, 0 skipped, 0 failed" in out[0].stdout, out[0].stdout
  assert "4 evaluated, 0 skipped, 0 failed" in out[1].stdout, out[1].stdout
  assert "report:" in out[0].stdout and "report:" not in out[1].stdout
  assert (workdir / "results.csv").is_file() and (workdir / "report" / "index.html").is_file()
  assert json.loads((workdir / "failures.json").read_text()) == [] and not (workdir / ".processes").exists()
  results = _results(workdir)
  assert len(results) == 8
  # One process, tracks scored one by one: the same numbers.
  sys.path.insert(0, str(REPO))
  from configs import evaluate as evaluate_config  # pylint: disable=import-outside-toplevel
  from mssjax.evaluation import loop as evaluate_lib  # pylint: disable=import-outside-toplevel
  config = evaluate_config.get_config()
  config.update(methods="irm2,mixture", progress=False, score_batch_size=1)
  config.data.update(n_generated=4, seconds=3.0)
  config.report.enabled = False
  evaluate_lib.evaluate(config, tmp_path / "one_process")
  assert _results(tmp_path / "one_process") == results
  # A re-run skips every finished track (the results do not depend on the process count).
  stamps = {p: p.stat().st_mtime_ns for p in workdir.glob("*/test/*.json")}
  summary = evaluate_lib.evaluate(config, workdir)
  assert (summary["done"], summary["skipped"]) == (0, 8)
  assert stamps == {p: p.stat().st_mtime_ns for p in workdir.glob("*/test/*.json")}



def test_separate_multihost_writes_every_song_once_as_one_chunk_per_call(tmp_path, cache):
  """``separate --multihost --batch-size 3`` on 2 processes x 2 devices: process p writes songs p and p + 2, each
  song once, and the random-weight tiny network's stems equal one chunk per call in this process, bit for bit
  (3 chunks per song: one batch split 2 + 1 over the devices)."""
  import jax  # pylint: disable=import-outside-toplevel
  from configs import unet_tiny  # pylint: disable=import-outside-toplevel
  from mssjax import audio, separate, separators, weights  # pylint: disable=import-outside-toplevel
  config = unet_tiny.get_config()
  params = models.model_spec(config).init(jax.random.key(3))
  network = weights.save(tmp_path / "tiny.safetensors", params, config)
  rng = np.random.default_rng(9)
  songs = [tmp_path / f"song {i}.wav" for i in range(4)]
  for song in songs:
    audio.save(song, rng.uniform(-0.3, 0.3, (2, 44100)).astype(np.float32))
  out = tmp_path / "out"
  argv = [sys.executable, "-m", "mssjax", "separate", *map(str, songs), "-o", str(out), "--set", f"weights={network}",
          "--batch-size", "3", "--multihost", "--quiet"]
  runs = _cluster.run_local_cluster(argv, num_processes=2, devices_per_process=2, timeout=TIMEOUT, cwd=REPO,
                                    env=_env(cache))
  for i, run in enumerate(runs):
    assert run.returncode == 0, f"process {i}:\n{run.stderr[-3000:]}"
    written = [line for line in run.stdout.splitlines() if not line.startswith("[Gloo]")]
    assert written == [str(out / f"song {k}") for k in (i, i + 2)], run.stdout
    assert f"process {i} of 2: 2 of 2 songs separated" in run.stderr, run.stderr
  assert sorted(os.listdir(out)) == [f"song {i}" for i in range(4)]  # and no temporary folder left
  separator = separators.get("unet", {"weights": str(network)})
  for song in songs:
    one = separate.separate_array(separator, audio.load(song), sample_rate=44100)
    for target in separator.targets:
      assert np.array_equal(audio.load(out / song.stem / f"{target}.wav"), one[target]), (song, target)

CLUSTER_CHECKS = textwrap.dedent("""
    import json, sys
    import numpy as np
    from mssjax import distributed
    distributed.initialize()
    import jax
    from configs import unet_tiny
    from mssjax import separators, sharded
    from mssjax.data import loaders, pipeline
    from mssjax.metrics import batched
    out = sys.argv[1]
    assert jax.device_count() == 4 and jax.local_device_count() == 2, jax.devices()
    # The synthetic loader's shards.
    config = unet_tiny.get_config()
    config.data.batch_size = 4
    iterator = loaders.make_train_iterator(config)
    synthetic = np.stack([next(iterator)["mixture"] for _ in range(3)])        # [3, 2, 2, n]
    np.save(out + f"/synthetic-{jax.process_index()}.npy", synthetic)
    # grain's: 8 constant tracks (track t is t + 1 everywhere), one chunk each, augmentations off.
    data = pipeline.default_config()
    data.update(batch_size=1, samples_per_track=1, chunk_seconds=0.01, sample_rate=1000)
    data.augment.update(gain=False, channel_swap=False, remix=False)
    source = pipeline.ArraySource([np.full((4, 2, 100), t + 1, np.float32) for t in range(8)])
    loader = pipeline.make_train_loader(data, seed=0, source=source, num_epochs=1)
    seen = [int(round(float(b["targets"][0, 0, 0, 0]))) - 1 for b in loader]
    with open(out + f"/grain-{jax.process_index()}.json", "w") as f:
      json.dump(seen, f)
    # Scoring and separation on a mesh of the 4 devices of both processes.
    sys.path.insert(0, sys.argv[2])
    from test_multihost import batch_of_tracks
    mesh = sharded.track_mesh(jax.devices())
    assert mesh.size == 4 and sharded.local_device_count(mesh) == 2
    references, estimates = batch_of_tracks(jax.process_index())
    scores = batched.bss_eval_v4_sharded(references, estimates, mesh=mesh, window=2000, hop=2000)
    stems = sharded.separate_tracks(separators.get("hpss_repet"), estimates.sum(1).swapaxes(1, 2), mesh=mesh)
    np.savez(out + f"/sharded-{jax.process_index()}.npz", **scores, **stems)
    distributed.barrier("done")
""")


@pytest.fixture(scope="module")
def cluster_checks(tmp_path_factory):
  """Runs `CLUSTER_CHECKS` on 2 processes x 2 devices; returns the folder of their outputs."""
  folder = tmp_path_factory.mktemp("cluster_checks")
  out = _cluster.run_local_cluster([sys.executable, "-c", CLUSTER_CHECKS, str(folder), str(REPO / "tests")],
                                      num_processes=2, devices_per_process=2, timeout=TIMEOUT, cwd=REPO)
  for i, process in enumerate(out):
    assert process.returncode == 0, f"process {i}:\n{process.stderr[-3000:]}"
  return folder


def batch_of_tracks(index: int, n_tracks: int = 3) -> tuple[np.ndarray, np.ndarray]:
  """Process ``index``'s tracks: references and estimates ``[n_tracks, 4, 20000, 2]`` (float32)."""
  rng = np.random.default_rng(index)
  references = rng.standard_normal((n_tracks, 4, 20000, 2)).astype(np.float32)
  return references, (references + 0.5 * rng.standard_normal(references.shape)).astype(np.float32)


def test_sharded_scoring_and_separation_over_two_processes_equal_one_by_one(cluster_checks):
  """3 tracks per process (padded to 4 over 2 processes x 2 devices) in one call each."""
  from mssjax import separators  # pylint: disable=import-outside-toplevel
  from mssjax.metrics import bss_eval_v4  # pylint: disable=import-outside-toplevel
  separator = separators.get("hpss_repet")
  for index in range(2):
    got = np.load(cluster_checks / f"sharded-{index}.npz")
    references, estimates = batch_of_tracks(index)
    for k in range(len(references)):
      alone = bss_eval_v4(references[k], estimates[k], window=2000, hop=2000)
      for metric, values in alone.items():
        np.testing.assert_array_equal(got[metric][k], values)
      stems = separator(estimates[k].sum(0).T)
      for target, stem in stems.items():
        np.testing.assert_array_equal(got[target][k], np.asarray(stem))


def test_sharded_inputs_are_checked():
  from mssjax import separators, sharded  # pylint: disable=import-outside-toplevel
  from mssjax.metrics import batched  # pylint: disable=import-outside-toplevel
  references, estimates = batch_of_tracks(0, n_tracks=1)
  with pytest.raises(ParameterError, match="references.ndim=3 must be 4"):
    batched.bss_eval_v4_sharded(references[0], estimates[0])
  with pytest.raises(ParameterError, match="must match"):
    batched.bss_eval_v4_sharded(references, estimates[:, :3])
  with pytest.raises(ParameterError, match=r"must be \[n_tracks, 2, n_samples\]"):
    sharded.separate_tracks(separators.get("hpss_repet"), np.zeros((2, 6000), np.float32))
  with pytest.raises(ParameterError, match="is an oracle"):
    sharded.separate_tracks(separators.get("irm2"), np.zeros((1, 2, 6000), np.float32))
