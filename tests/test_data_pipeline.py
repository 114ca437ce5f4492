"""Tests for mssjax.data.pipeline: the grain training loader and the validation tracks."""

import pickle

import numpy as np
import soundfile as sf
import pytest
import tensorflow_datasets as tfds

import grain
from mssjax import TARGETS
from mssjax.data import generate, pipeline, sources, tfds_musdb
from mssjax.errors import DataError, ParameterError

N_TRACKS, N_SAMPLES, CHUNK = 5, 3000, 400
OFF = dict(gain=False, channel_swap=False, remix=False, batch_remix=False)


def _coded_tracks():
  """Track t, stem s, channel c, sample i holds ``(8 t + 2 s + c) * 65536 + i`` (exact in float32)."""
  t, s, c, i = np.meshgrid(np.arange(N_TRACKS), np.arange(4), np.arange(2), np.arange(N_SAMPLES),
                           indexing="ij")
  return list(((8 * t + 2 * s + c) * 65536 + i).astype(np.float32))


def _decode(chunk):
  """``[2, n]`` coded chunk -> (track, stem, channels (c0, c1), start)."""
  code, start = np.divmod(chunk[:, 0].astype(np.int64), 65536)
  assert np.all(np.diff(chunk, axis=-1) == 1), "a chunk is a contiguous slice"
  return int(code[0] // 8), int(code[0] % 8 // 2), tuple(int(x % 2) for x in code), int(start[0])


def _config(**augment):
  config = pipeline.default_config()
  config.batch_size, config.sample_rate, config.chunk_seconds = 4, 1000, CHUNK / 1000
  config.samples_per_track, config.shard_by_process = 3, False
  config.augment.update(augment)
  return config


def _loader(seed=0, source=None, **augment):
  source = pipeline.ArraySource(_coded_tracks()) if source is None else source
  return pipeline.make_train_loader(_config(**augment), seed=seed, source=source)


def _take(iterator, n):
  return [next(iterator) for _ in range(n)]


def _assert_same(batches_a, batches_b):
  assert len(batches_a) == len(batches_b)
  for a, b in zip(batches_a, batches_b):
    np.testing.assert_array_equal(a["mixture"], b["mixture"])
    np.testing.assert_array_equal(a["targets"], b["targets"])


def test_batch_shapes_dtype_and_sum():
  batch = next(iter(_loader()))
  assert batch["mixture"].shape == (4, 2, CHUNK) and batch["targets"].shape == (4, 4, 2, CHUNK)
  assert batch["mixture"].dtype == batch["targets"].dtype == np.float32
  np.testing.assert_allclose(batch["mixture"], batch["targets"].sum(axis=1), rtol=1e-6)


def test_no_augmentation_cuts_one_chunk_of_one_track():
  for batch in _take(iter(_loader(**OFF)), 3):
    for targets in batch["targets"]:
      decoded = [_decode(stem) for stem in targets]
      assert [d[1] for d in decoded] == [0, 1, 2, 3]  # stems in TARGETS order
      assert len({(d[0], d[3]) for d in decoded}) == 1  # same track, same start
      assert all(d[2] == (0, 1) for d in decoded)  # channels kept
      assert 0 <= decoded[0][3] <= N_SAMPLES - CHUNK


def test_epoch_visits_every_track_samples_per_track_times():
  loader = pipeline.make_train_loader(_config(**OFF), seed=1, source=pipeline.ArraySource(_coded_tracks()),
                                      num_epochs=1)
  tracks = [_decode(t[0])[0] for batch in loader for t in batch["targets"]]
  assert len(tracks) == (N_TRACKS * 3) // 4 * 4
  counts = np.bincount(tracks, minlength=N_TRACKS)
  assert counts.max() <= 3 and counts.sum() == len(tracks)


def test_remix_draws_stems_from_different_tracks():
  decoded = [[_decode(stem) for stem in targets]
             for batch in _take(iter(_loader(**dict(OFF, remix=True))), 4) for targets in batch["targets"]]
  assert all([d[1] for d in example] == [0, 1, 2, 3] for example in decoded)
  mixed = [len({(d[0], d[3]) for d in example}) > 1 for example in decoded]
  assert np.mean(mixed) > 0.8


def test_batch_remix_permutes_each_stem_across_the_batch():
  plain = _take(iter(_loader(seed=3, **OFF)), 3)
  remixed = _take(iter(_loader(seed=3, **dict(OFF, batch_remix=True))), 3)
  moved = 0
  for a, b in zip(plain, remixed):
    for s in range(4):
      before = sorted(_decode(x) for x in a["targets"][:, s])
      assert sorted(_decode(x) for x in b["targets"][:, s]) == before  # a permutation of stem s
      moved += not np.array_equal(a["targets"][:, s], b["targets"][:, s])
    np.testing.assert_array_equal(b["mixture"], b["targets"].sum(axis=1))
  assert moved >= 6


def test_channel_swap_switch():
  def swaps(**augment):
    batches = _take(iter(_loader(**dict(OFF, **augment))), 4)
    return [_decode(stem)[2] for b in batches for targets in b["targets"] for stem in targets]
  assert set(swaps()) == {(0, 1)}
  swapped = swaps(channel_swap=True)
  assert set(swapped) == {(0, 1), (1, 0)} and 0.25 < swapped.count((1, 0)) / len(swapped) < 0.75


def test_gain_switch():
  ones = pipeline.ArraySource([np.ones((4, 2, N_SAMPLES), np.float32)] * 3)
  plain = next(iter(_loader(source=ones, **OFF)))["targets"]
  np.testing.assert_array_equal(plain, 1.0)
  gains = next(iter(_loader(source=ones, **dict(OFF, gain=True))))["targets"]
  per_stem = gains[..., 0, 0]
  np.testing.assert_array_equal(gains, per_stem[..., None, None] * np.ones((2, CHUNK), np.float32))
  assert per_stem.min() >= 0.25 and per_stem.max() <= 1.25 and np.unique(per_stem).size == per_stem.size


def test_sign_flip_switch():
  ones = pipeline.ArraySource([np.ones((4, 2, N_SAMPLES), np.float32)] * 3)
  flipped = np.concatenate([b["targets"] for b in _take(iter(_loader(source=ones, **dict(OFF, sign_flip=True))), 4)])
  per_stem = flipped[..., 0, 0]
  assert set(np.unique(per_stem)) == {-1.0, 1.0} and 0.25 < np.mean(per_stem < 0) < 0.75
  np.testing.assert_array_equal(flipped, per_stem[..., None, None] * np.ones((2, CHUNK), np.float32))


def test_speed_changes_tempo_and_pitch_together():
  """A sine at 50 Hz (1 kHz rate) played at a random speed in [1.5, 2]: each stem's pitch rises by its speed."""
  t = np.arange(N_SAMPLES) / 1000
  sine = pipeline.ArraySource([np.broadcast_to(np.sin(2 * np.pi * 50 * t), (4, 2, N_SAMPLES)).astype(np.float32)] * 3)
  batches = _take(iter(_loader(source=sine, **dict(OFF, speed=True, speed_low=1.5, speed_high=2.0))), 2)
  peaks = []
  for batch in batches:
    np.testing.assert_allclose(batch["mixture"], batch["targets"].sum(1), atol=1e-6)
    spectrum = np.abs(np.fft.rfft(batch["targets"][..., 0, :] * np.hanning(CHUNK), axis=-1))
    peaks.extend((np.argmax(spectrum, axis=-1) * 1000 / CHUNK).ravel())
  assert min(peaks) >= 72.5 and max(peaks) <= 102.5 and len(set(peaks)) > 1, peaks  # 75-100 Hz, bins of 2.5
  again = _take(iter(_loader(source=sine, **dict(OFF, speed=True, speed_low=1.5, speed_high=2.0))), 2)
  _assert_same(batches, again)
  with pytest.raises(ParameterError, match="speed_low"):
    pipeline.Augment(speed_low=0.0)


def test_deterministic_for_a_seed():
  _assert_same(_take(iter(_loader(seed=5)), 3), _take(iter(_loader(seed=5)), 3))
  other = next(iter(_loader(seed=6)))
  assert not np.array_equal(other["targets"], next(iter(_loader(seed=5)))["targets"])


def test_state_restore_resumes_the_same_stream():
  iterator = iter(_loader(seed=2))
  _take(iterator, 2)
  state = pipeline.iterator_state(iterator)
  expected = _take(iterator, 3)
  restored = pipeline.restore_iterator_state(iter(_loader(seed=2)), state)
  _assert_same(_take(restored, 3), expected)


def test_orbax_checkpoint_of_the_iterator(tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint")
  iterator = iter(_loader(seed=4))
  _take(iterator, 2)
  with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
    manager.save(7, args=ocp.args.Composite(data=pipeline.checkpoint_save_args(iterator)))
    manager.wait_until_finished()
  expected = _take(iterator, 2)
  fresh = iter(_loader(seed=4))
  with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
    restored = manager.restore(7, args=ocp.args.Composite(data=pipeline.checkpoint_restore_args(fresh)))
  _assert_same(_take(restored["data"], 2), expected)


def test_shards_are_disjoint_and_default_is_per_process():
  def examples(shard_index):
    options = grain.sharding.ShardOptions(shard_index=shard_index, shard_count=2, drop_remainder=True)
    loader = pipeline.make_train_loader(_config(**OFF), seed=3, source=pipeline.ArraySource(_coded_tracks()),
                                        shard_options=options, num_epochs=1)
    return [_decode(t[0])[:1] + _decode(t[0])[3:] for b in loader for t in b["targets"]]
  first, second = examples(0), examples(1)
  assert first and second and first != second
  # One JAX process: sharding by process is no sharding.
  config = _config()
  config.shard_by_process = True
  by_process = pipeline.make_train_loader(config, seed=8, source=pipeline.ArraySource(_coded_tracks()))
  _assert_same(_take(iter(by_process), 2), _take(iter(_loader(seed=8)), 2))


def test_short_tracks_are_zero_padded():
  short = pipeline.ArraySource([np.ones((4, 2, CHUNK // 2), np.float32)])
  targets = next(iter(_loader(source=short, **OFF)))["targets"]
  np.testing.assert_array_equal(targets[..., : CHUNK // 2], 1.0)
  np.testing.assert_array_equal(targets[..., CHUNK // 2:], 0.0)


@pytest.mark.parametrize("field, value, message", [
    ("chunk_seconds", 0.0, "data.chunk_seconds=0.0 must be > 0"),
    ("chunk_seconds", float("nan"), "data.chunk_seconds=nan must be a finite number"),
    ("chunk_seconds", 1e-4, "chunk samples=0 must be a positive integer"),
    ("batch_size", 0, "data.batch_size=0 must be a positive integer"),
    ("source", "nope", r"data.source='nope' is not known; valid choices: \['files', 'tfds'\]"),
    ("samples_per_track", -1, "data.samples_per_track=-1 must be a positive integer"),
    ("worker_count", -1, "data.worker_count=-1 must be a non-negative integer"),
    ("worker_buffer_size", 0, "data.worker_buffer_size=0 must be a positive integer"),
])
def test_bad_config(field, value, message):
  config = _config()
  config[field] = value
  with pytest.raises(ParameterError, match=message):
    pipeline.make_train_loader(config, seed=0, source=None if field == "source" else
                               pipeline.ArraySource(_coded_tracks()))


def test_bad_augment_and_source():
  with pytest.raises(ParameterError, match="gain_low"):
    pipeline.Augment(gain_low=1.5, gain_high=1.0)
  with pytest.raises(ParameterError, match="targets"):
    pipeline.ArraySource([np.zeros((5, 2, 10))])
  with pytest.raises(TypeError):  # mixtures and names are keyword-only
    pipeline.ArraySource([np.zeros((4, 2, 10))], [np.zeros((2, 10))])
  config = _config()
  with pytest.raises(ParameterError, match="data.root"):
    pipeline.make_train_loader(config, seed=0)


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
  root = tmp_path_factory.mktemp("songs")
  generate.write_songs(root, n_train=3, n_test=1, seconds=1.0, seed=5)
  return root


def test_wav_source_refuses_unequal_stems_and_wrong_rates(tmp_path):
  generate.write_songs(tmp_path, n_train=1, n_test=0, seconds=0.5)
  (folder,) = (tmp_path / "train").iterdir()
  sf.write(folder / "bass.wav", np.zeros((1000, 2), np.int16), 44100, subtype="PCM_16")
  with pytest.raises(DataError, match="differ in length"):
    pipeline.WavSource(tmp_path)
  sf.write(folder / "bass.wav", np.zeros((22050, 2), np.int16), 22050, subtype="PCM_16")
  with pytest.raises(DataError, match="22050 Hz"):
    pipeline.WavSource(tmp_path)


def test_neighbouring_seeds_give_unrelated_chunks():
  first = {_decode(t[0]) for b in _take(iter(_loader(seed=10, **OFF)), 3) for t in b["targets"]}
  second = {_decode(t[0]) for b in _take(iter(_loader(seed=11, **OFF)), 3) for t in b["targets"]}
  assert len(first & second) <= 1
  for seed in (-1, True, 1.0):
    with pytest.raises(ParameterError, match=f"seed={seed!r} must be a non-negative integer"):
      _loader(seed=seed)


def test_wav_source_refuses_an_unknown_split(songs):
  with pytest.raises(ParameterError, match=r"split='validation' is not known; valid choices: \[None, 'train', 'valid'\]"):
    pipeline.WavSource(songs, split="validation")


def test_wav_source_reads_stems_in_targets_order(songs):
  source = pipeline.WavSource(songs, subset="train")
  rng = np.random.default_rng(0)
  chunk = source.chunk(1, length=CHUNK, rng=rng)
  start = sources.chunk_start(44100, CHUNK, np.random.default_rng(0))
  song = generate.generate_song(seed=generate._song_seed(5, "train", 1), seconds=1.0)
  expected = np.stack([song[name] for name in TARGETS])[..., start:start + CHUNK]
  np.testing.assert_array_equal(chunk, expected)
  track = source.track(1)
  assert track["name"] == generate.song_name("train", 1)
  np.testing.assert_array_equal(track["mixture"], song["mixture"])
  np.testing.assert_array_equal(track["targets"], np.stack([song[name] for name in TARGETS]))


def test_loader_from_config_files_and_eval_tracks(songs):
  config = pipeline.default_config()
  config.root, config.batch_size, config.chunk_seconds, config.shard_by_process = str(songs), 2, 0.25, False
  batch = next(iter(pipeline.make_train_loader(_Holder(config), seed=0)))
  assert batch["targets"].shape == (2, 4, 2, 11025)
  # Generated songs hold none of MUSDB18's validation tracks: a seeded tenth (at least one) of them validates.
  (held_out,) = [t["name"] for t in pipeline.make_eval_source(config)]
  assert held_out not in pipeline.make_source(config).names and len(pipeline.make_source(config)) == 2
  config.valid_method = "musdb"
  with pytest.raises(DataError, match="no tracks in split 'valid'"):
    pipeline.make_eval_source(config)
  config.eval_subset, config.eval_split = "test", None
  tracks = list(pipeline.make_eval_source({"data": config.to_dict()}))
  assert [t["name"] for t in tracks] == [generate.song_name("test", 0)]
  np.testing.assert_array_equal(tracks[0]["mixture"], tracks[0]["targets"].sum(0))


class _Holder:
  """An experiment config with a ``data`` field, as train_lib passes it."""

  def __init__(self, data):
    self.data = data


def test_tfds_source_matches_wav_source(songs, tmp_path):
  tfds.disable_progress_bar()
  tfds_musdb.build(songs, tmp_path, config="hq")
  config = pipeline.default_config()
  config.source, config.tfds_dir, config.tfds_config = "tfds", str(tmp_path), "hq"
  source = pipeline.make_source(config)
  wavs = pipeline.WavSource(songs, subset="train")
  assert len(source) == len(wavs) == 3
  for index in range(len(source)):
    name = source.record(index)["name"]
    expected = wavs.chunk(wavs.names.index(name), length=CHUNK, rng=np.random.default_rng(index))
    np.testing.assert_array_equal(source.chunk(index, length=CHUNK, rng=np.random.default_rng(index)),
                                  expected)
  config.batch_size, config.chunk_seconds, config.shard_by_process = 2, 0.25, False
  batch = next(iter(pipeline.make_train_loader(config, seed=1)))
  assert batch["mixture"].shape == (2, 2, 11025)
  config.eval_subset, config.eval_split = "test", None
  (track,) = list(pipeline.make_eval_source(config))
  assert track["name"] == generate.song_name("test", 0) and track["targets"].shape == (4, 2, 44100)
  np.testing.assert_array_equal(track["mixture"], track["targets"].sum(0))


def test_sources_survive_pickling_for_worker_processes(songs, tmp_path):
  tfds.disable_progress_bar()
  builder = tfds_musdb.build(songs, tmp_path, config="hq")
  for source in (pipeline.WavSource(songs), pipeline.TfdsSource(builder.as_data_source("train"))):
    copy = pickle.loads(pickle.dumps(pipeline.RandomChunk(source, length=CHUNK)))
    expected = source.chunk(2, length=CHUNK, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(copy.source.chunk(2, length=CHUNK, rng=np.random.default_rng(1)), expected)


def test_eval_tracks_join_tfds_segments(songs, tmp_path):
  tfds.disable_progress_bar()
  segmented = tfds_musdb.Musdb18Config(name="hq_test_0p3s", dtype="int16", segment_seconds=0.3)
  builder = tfds_musdb.build(songs, tmp_path, config=segmented)
  source = pipeline.TfdsSource(builder.as_data_source("train"))
  assert len(source) == 3 * 4  # 1 s songs in 0.3 s segments
  tracks = pipeline.make_eval_source({}, source=source)
  wavs = pipeline.WavSource(songs)
  assert [t["name"] for t in tracks] == wavs.names and len(tracks) == 3
  for index, track in enumerate(tracks):
    expected = wavs.track(index)
    np.testing.assert_array_equal(track["targets"], expected["targets"])
    np.testing.assert_array_equal(track["mixture"], expected["mixture"])


@pytest.mark.realdata
def test_wav_source_refuses_stem_files(musdb_root):
  with pytest.raises(DataError, match="stem.mp4"):
    pipeline.WavSource(musdb_root)


@pytest.mark.slow
def test_two_worker_processes():
  """Workers batch their own records (worker i takes records i, i + 2, ...): same examples, and a
  deterministic, restorable stream for a given worker_count."""
  config = _config(**OFF)
  config.batch_size = 2
  source = pipeline.ArraySource(_coded_tracks())
  single = _take(iter(pipeline.make_train_loader(config, seed=9, source=source)), 4)
  config.worker_count = 2
  iterator = iter(pipeline.make_train_loader(config, seed=9, source=source))
  first = _take(iterator, 1)
  state = iterator.get_state()
  rest = _take(iterator, 3)
  def examples(batches):
    return sorted(_decode(t[0]) for b in batches for t in b["targets"])
  assert examples(first + rest) == examples(single)
  restored = iter(pipeline.make_train_loader(config, seed=9, source=source))
  restored.set_state(state)
  _assert_same(_take(restored, 3), rest)
