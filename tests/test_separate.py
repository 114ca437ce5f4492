"""Tests of whole-song separation (mssjax.separate), the unet separator and ``python -m mssjax separate``."""

import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

import ml_collections

from mssjax import TARGETS, audio, separate, separators, sharded
from mssjax.deploy import exported
from mssjax.training import loop as train_lib
from mssjax.__main__ import main
from mssjax.errors import AudioError, CheckpointError, ParameterError
from mssjax.separators import Separator
from mssjax.separators import network as separator_lib

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the configs/ folder
from configs import unet_tiny  # pylint: disable=wrong-import-position


def _Quarters():  # pylint: disable=invalid-name
  """A fake separator: every stem is a quarter of the mixture (so the stems add up to it)."""
  def apply(params, mixture):
    assert mixture.shape == (2, 44100)  # one chunk at the separator's rate
    return jnp.stack([mixture / 4] * len(TARGETS))
  return Separator("quarters", TARGETS, 44100, ml_collections.ConfigDict(), apply, chunk_seconds=1.0,
                   overlap_seconds=0.25)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A tiny trained network (the config of tests/test_train.py, so compiled steps are shared)."""
  config = unet_tiny.get_config()
  config.num_train_steps, config.checkpoint_every, config.eval_every = 6, 2, 6
  path = tmp_path_factory.mktemp("unet")
  train_lib.train_and_evaluate(config, path)
  return path


@pytest.mark.parametrize("n,chunk,overlap", [(1000, 300, 50), (1000, 300, 0), (300, 300, 100), (301, 300, 100),
                                             (17, 300, 100), (5000, 1000, 999)])
def test_overlap_add_of_an_identity_gives_the_signal_back(n, chunk, overlap):
  x = np.random.default_rng(n).standard_normal((2, n)).astype(np.float32)
  lengths = []

  def separate_chunk(c):
    lengths.append(c.shape[-1])
    return np.stack([c, -2 * c])

  class Progress:
    count = 0

    def update(self, k):
      self.count += k

  progress = Progress()
  out = separate.separate_in_chunks(separate_chunk, x, chunk_samples=chunk, overlap_samples=overlap,
                                    progress=progress)
  assert out.shape == (2, 2, n)
  np.testing.assert_allclose(out[0], x, rtol=1e-5, atol=1e-6)  # float32 sums of up to 1000 chunks
  np.testing.assert_allclose(out[1], -2 * x, rtol=1e-5, atol=1e-6)
  assert set(lengths) == {chunk}  # always full chunks: a jitted separator compiles once
  assert len(lengths) == len(separate.chunk_starts(n, chunk, overlap)) == progress.count  # one tick per chunk


def test_overlap_add_in_batches_equals_one_chunk_at_a_time():
  """`overlap_add_blocks` with ``batch_size``: the calls get 3 chunks (the last call 1), the output is the same."""
  x = np.random.default_rng(7).standard_normal((2, 1000)).astype(np.float32)
  batches = []

  def separate_batch(chunks):
    batches.append(chunks.shape[0])
    return np.stack([chunks, chunks ** 2], axis=1)

  one = separate.separate_in_chunks(lambda c: np.stack([c, c ** 2]), x, chunk_samples=300, overlap_samples=50)
  blocks = np.array_split(x, [17, 400, 401], axis=-1)
  got = np.concatenate(list(exported.overlap_add_blocks(separate_batch, blocks, chunk_samples=300,
                                                        overlap_samples=50, batch_size=3)), axis=-1)
  assert batches == [3, 1] and np.array_equal(got, one)


def _cheap_hpss_repet():
  """hpss_repet with a small STFT, short kernels and half-second chunks: the same program, compiled quickly."""
  return separators.get("hpss_repet", {"chunk_seconds": 0.5, "overlap_seconds": 0.1, "stft.n_fft": 512,
                                       "stft.hop_length": 128, "hpss.kernel_size": (5, 5), "repet.n_neighbors": 3})


@pytest.mark.parametrize("which", ["network", "classical"])
def test_batched_chunks_equal_one_chunk_per_call(workdir, which):
  """``batch_size=3`` (5 chunks: a batch of 3, then of 2, on one compiled program) gives the stems of one chunk
  per call bit for bit; a 3-channel song's chunks go 9 per call (3 dual-mono pairs each). Several devices:
  tests/test_multihost.py."""
  separator = separator_lib.unet_separator({"checkpoint": str(workdir)}) if which == "network" else _cheap_hpss_repet()
  mixture = np.random.default_rng(8).uniform(-0.3, 0.3, (2 if which == "network" else 3, int(2.1 * 44100)))
  one = separate.separate_array(separator, mixture, sample_rate=44100)
  batched = separate.separate_array(separator, mixture, sample_rate=44100, batch_size=3)
  for target in separator.targets:
    assert np.array_equal(batched[target], one[target]), target
  if which == "network":  # a batch of one on the mesh (the library's; the command's --batch-size 1 calls apply)
    chunk = mixture[:, :separate.chunk_samples(separator)[0]].astype(np.float32)
    assert np.array_equal(sharded.separate_chunks(separator, chunk[None], batch_size=1)[0],
                          separator.separate_chunk(chunk))


def test_crossfade_weights_are_positive_and_complementary():
  w = separate.crossfade_window(100, 20)
  assert np.all(w > 0) and np.all(w <= 1)
  np.testing.assert_allclose(w[:20] + w[-20:], 1.0, atol=1e-6)  # consecutive chunks' weights sum to one


@pytest.mark.parametrize("chunk,overlap", [(0, 0), (100, 100), (100, -1), (100, 2.5)])
def test_bad_chunking(chunk, overlap):
  with pytest.raises(ParameterError):
    separate.separate_in_chunks(lambda c: c[None], np.zeros((2, 10)), chunk_samples=chunk, overlap_samples=overlap)


@pytest.mark.parametrize("rate,channels", [(44100, 2), (22050, 1), (48000, 2), (16000, 3)])
def test_any_rate_and_channel_count(rate, channels):
  t = np.arange(int(2.5 * rate)) / rate
  mixture = np.stack([0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)]).astype(np.float32)
  stems = separate.separate_array(_Quarters(), mixture, sample_rate=rate)
  assert set(stems) == set(TARGETS)
  for stem in stems.values():
    assert stem.shape == mixture.shape and stem.dtype == np.float32
  total = sum(stems.values())
  edge = rate // 20  # resampling filters ring at the very ends
  np.testing.assert_allclose(total[:, edge:-edge], mixture[:, edge:-edge], atol=2e-3)


def _in_memory(separator, mixture, rate):
  """The whole-song recipe, written out: resample, overlap-add each stereo pair, resample back, cut."""
  pairs = [mixture] if mixture.shape[0] == 2 else [np.stack([c, c]) for c in mixture]
  outs = []
  for pair in pairs:
    x = audio.resample(pair, rate, separator.sample_rate)
    chunk, overlap = separate.chunk_samples(separator, x.shape[-1])
    stems = separate.separate_in_chunks(separator.separate_chunk, x, chunk_samples=chunk, overlap_samples=overlap)
    stems = audio.resample(stems, separator.sample_rate, rate)
    outs.append(np.pad(stems, ((0, 0), (0, 0), (0, max(0, mixture.shape[-1] - stems.shape[-1]))))[..., :mixture.shape[-1]])
  return outs[0] if mixture.shape[0] == 2 else np.stack([o.mean(axis=1) for o in outs], axis=1)


@pytest.mark.parametrize("rate,channels", [(44100, 2), (48000, 2), (22050, 1), (16000, 3)])
def test_blocks_of_any_size_give_the_whole_song_result(rate, channels):
  """`separate_blocks` over blocks of random sizes: the whole-song recipe's stems, sample for sample."""
  rng = np.random.default_rng(rate + channels)
  mixture = rng.uniform(-0.3, 0.3, (channels, int(3.3 * rate))).astype(np.float32)
  separator = Separator("odd", TARGETS, 44100, ml_collections.ConfigDict(),
                        lambda params, x: jnp.stack([x * k for k in (0.1, -0.2, 0.3, x[0] * 0.4)]),
                        chunk_seconds=1.0, overlap_seconds=0.3)
  cuts = np.sort(rng.choice(np.arange(1, mixture.shape[-1]), 12, replace=False))
  blocks = np.split(mixture, cuts, axis=-1)
  got = np.concatenate(list(separate.separate_blocks(separator, blocks, sample_rate=rate, channels=channels)), -1)
  np.testing.assert_array_equal(got, _in_memory(separator, mixture, rate))


def test_one_dimensional_input_gives_one_dimensional_stems():
  stems = separate.separate_array(_Quarters(), np.zeros(30000, np.float32), sample_rate=44100)
  assert all(s.shape == (30000,) for s in stems.values())


def test_bad_mixtures():
  with pytest.raises(ParameterError, match="NaN or Inf"):
    separate.separate_array(_Quarters(), np.full((2, 100), np.nan, np.float32), sample_rate=44100)
  with pytest.raises(ParameterError, match="must be"):
    separate.separate_array(_Quarters(), np.zeros((1, 2, 100), np.float32), sample_rate=44100)


def test_song_names():
  assert separate.song_name("/x/A Classic Education - NightOwl.stem.mp4") == "A Classic Education - NightOwl"
  assert separate.song_name("Mr. X - y.wav") == "Mr. X - y"


def test_unet_separator_contract(workdir):
  model = separator_lib.unet_separator({"checkpoint": str(workdir)})
  assert model.name == "unet" and not model.needs_references and model.n_parameters > 0
  mixture = np.random.default_rng(0).standard_normal((3, 2, 30000)).astype(np.float32) * 0.1
  stems = model(mixture)
  assert list(stems) == list(TARGETS)
  assert all(s.shape == mixture.shape and s.dtype == np.float32 for s in stems.values())
  np.testing.assert_allclose(sum(stems.values()), mixture, atol=1e-5)  # softmax masks
  np.testing.assert_allclose(model(mixture[1])["bass"], stems["bass"][1], atol=1e-6)
  with pytest.raises(ParameterError, match=r"\[..., 2, n_samples\]"):
    model(mixture[:, :1])


def test_unet_separator_bad_sources(tmp_path):
  with pytest.raises(CheckpointError, match="not a training workdir"):
    separator_lib.unet_separator({"checkpoint": str(tmp_path)})
  with pytest.raises(CheckpointError, match="no such weights file"):
    separator_lib.unet_separator({"weights": str(tmp_path / "missing.safetensors")})
  with pytest.raises(ParameterError, match="unknown key 'checkpoints'; valid keys: channel_swap, checkpoint, chunk_seconds"):
    separator_lib.unet_separator({"checkpoints": str(tmp_path)})


def test_command_line_writes_stems_at_the_input_rate_and_channels(workdir, tmp_path):
  rate_a, rate_b = 22050, 48000
  mono = (0.2 * np.sin(2 * np.pi * 330 * np.arange(rate_a) / rate_a)).astype(np.float32)[None]
  stereo = np.random.default_rng(1).uniform(-0.3, 0.3, (2, int(1.3 * rate_b))).astype(np.float32)
  audio.save(tmp_path / "mono song.wav", mono, sample_rate=rate_a)
  audio.save(tmp_path / "stereo.flac", stereo, sample_rate=rate_b, subtype="PCM_24")
  out = tmp_path / "out"
  code = main(["separate", str(tmp_path / "mono song.wav"), str(tmp_path / "stereo.flac"), "--method", "unet",
               "--checkpoint", str(workdir), "-o", str(out), "--quiet"])
  assert code == 0
  for song, rate, channels, n in (("mono song", rate_a, 1, mono.shape[-1]), ("stereo", rate_b, 2, stereo.shape[-1])):
    assert sorted(os.listdir(out / song)) == sorted(f"{t}.wav" for t in TARGETS)
    for target in TARGETS:
      header = sf.info(str(out / song / f"{target}.wav"))
      assert (header.samplerate, header.channels, header.frames) == (rate, channels, n)


def test_command_line_classical_method_by_name(tmp_path):
  mixture = np.random.default_rng(2).uniform(-0.3, 0.3, (2, 44100)).astype(np.float32)
  audio.save(tmp_path / "song.wav", mixture)
  assert main(["separate", str(tmp_path / "song.wav"), "--method", "mixture", "-o", str(tmp_path), "--quiet"]) == 0
  for target in TARGETS:
    np.testing.assert_allclose(audio.load(tmp_path / "song" / f"{target}.wav"), mixture, atol=1e-6)



def test_command_line_writes_16_bit_flac_and_counts_clipped_samples(tmp_path, capsys):
  mixture = np.random.default_rng(3).uniform(-0.3, 0.3, (2, 22050)).astype(np.float32)
  mixture[0, 100:110] = 1.3  # beyond full scale: clipped in every stem (each is the mixture)
  audio.save(tmp_path / "song.wav", mixture)
  out = tmp_path / "out"
  assert main(["separate", str(tmp_path / "song.wav"), "--set", "method=mixture", "--format", "flac",
               "--bit-depth", "16", "-o", str(out), "--quiet"]) == 0
  assert sorted(os.listdir(out / "song")) == sorted(f"{t}.flac" for t in TARGETS)
  for target in TARGETS:
    header = sf.info(str(out / "song" / f"{target}.flac"))
    assert (header.samplerate, header.channels, header.frames, header.subtype) == (44100, 2, 22050, "PCM_16")
    np.testing.assert_allclose(audio.load(out / "song" / f"{target}.flac"), np.clip(mixture, -1, 1), atol=1.5 / 32768)
  err = capsys.readouterr().err
  assert err.count("warning:") == 1, err
  assert f"song: 40 samples beyond full scale were clipped ({', '.join(f'{t} 10' for t in TARGETS)})" in err
  assert main(["separate", str(tmp_path / "song.wav"), "--format", "flac", "--bit-depth", "32f", "-o", str(out)]) == 2
  assert "error: bit_depth='32f' must be one of ['16', '24'] for flac" in capsys.readouterr().err


def test_an_existing_song_folder_must_hold_stems_of_the_chosen_format(tmp_path):
  (tmp_path / "song").mkdir()
  (tmp_path / "song" / "vocals.flac").write_bytes(b"old stem")

  def output(ext):
    return separate.SongOutput({t: tmp_path / "song" / f"{t}.{ext}" for t in TARGETS}, tmp_path / "song")

  assert separate.check_output(output("flac")).folder == tmp_path / "song"
  with pytest.raises(AudioError, match="holds 'vocals.flac', which is a stem of another format than .wav; the folder"):
    separate.check_output(output("wav"))
  (tmp_path / "song" / "notes.txt").write_bytes(b"not a stem")
  with pytest.raises(AudioError, match="holds 'notes.txt', which is not a stem"):
    separate.check_output(output("flac"))


def test_command_line_errors(workdir, tmp_path, capsys):
  assert main(["separate", str(tmp_path / "missing.wav"), "--checkpoint", str(workdir), "-o", str(tmp_path)]) == 1
  assert "missing.wav" in capsys.readouterr().err
  audio.save(tmp_path / "song.wav", np.zeros((2, 4410), np.float32))
  assert main(["separate", str(tmp_path / "song.wav"), "--method", "nope", "-o", str(tmp_path)]) == 2
  assert "nope" in capsys.readouterr().err
  assert main(["separate", str(tmp_path / "song.wav"), "--method", "mixture", "--batch-size", "0", "-o",
               str(tmp_path)]) == 2
  assert "--batch-size=0 must be a positive integer" in capsys.readouterr().err


TEN_MINUTES = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from mssjax import separate
    from mssjax.separators import network as separator
    model = separator.unet_separator({{"checkpoint": {workdir!r}, "chunk_seconds": 30.0}})
    n = 600 * 44100
    mixture = (0.1 * np.sin(2 * np.pi * 220 * np.arange(n) / 44100)).astype(np.float32)
    mixture = np.stack([mixture, mixture[::-1].copy()])
    stems = separate.separate_array(model, mixture, sample_rate=44100)
    assert all(s.shape == (2, n) for s in stems.values())
    # VmHWM: this process's own peak. ru_maxrss is not: Linux carries the high-water mark across
    # fork/vfork + exec, so it reads at least the parent's resident size (pytest's, gigabytes late
    # in the suite: a clean-clone run read 5.5 GB here where the child alone peaks far lower).
    status = open("/proc/self/status").read().split("VmHWM:")
    peak_kb = float(status[1].split()[0]) if len(status) > 1 else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("PEAK_MB", peak_kb / 1024)
""")


@pytest.mark.slow
def test_ten_minute_song_in_bounded_memory(workdir):
  """Peak memory of a 10-minute stereo song stays far below 4 GB (inputs and stems alone are 1 GB)."""
  out = subprocess.run([sys.executable, "-c", TEN_MINUTES.format(workdir=str(workdir))], cwd=REPO,
                       capture_output=True, text=True, timeout=600, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  peak_mb = float(out.stdout.split("PEAK_MB")[1])
  assert peak_mb < 4096, peak_mb


@pytest.mark.slow
def test_the_command_line_keeps_compiled_programs_in_a_persistent_cache(tmp_path):
  audio.save(tmp_path / "song.wav", np.random.default_rng(4).uniform(-0.3, 0.3, (2, 44100)).astype(np.float32))
  cache = tmp_path / "cache"
  command = [sys.executable, "-m", "mssjax", "separate", str(tmp_path / "song.wav"), "--method", "hpss_repet",
             "-o", str(tmp_path / "out"), "--quiet"]
  # Every program is stored: with the 0.2 s threshold, what gets stored hangs on how fast each
  # process happens to compile its small programs.
  env = dict(os.environ, MSSJAX_COMPILATION_CACHE="1", MSSJAX_COMPILATION_CACHE_DIR=str(cache),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  out = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert out.returncode == 0, out.stderr[-2000:]
  entries = sorted(cache.iterdir())
  assert any(entry.name.startswith("jit_") for entry in entries)
  out = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert out.returncode == 0 and sorted(cache.iterdir()) == entries  # the second process reuses, adds nothing


@pytest.mark.parametrize("env,expected", [(None, 0.2), ("0", 7.0), ("1.5", 7.0)])
def test_the_compilation_cache_keeps_an_explicit_jax_threshold(monkeypatch, env, expected):
  """enable() stores programs of 0.2 s or more unless JAX's own variable says otherwise."""
  from mssjax import compilation_cache  # pylint: disable=import-outside-toplevel
  before = jax.config.jax_persistent_cache_min_compile_time_secs
  monkeypatch.setenv("MSSJAX_COMPILATION_CACHE_DIR", str(jax.config.jax_compilation_cache_dir))
  if env is None:
    monkeypatch.delenv(compilation_cache.MIN_COMPILE_TIME_ENV, raising=False)
  else:
    monkeypatch.setenv(compilation_cache.MIN_COMPILE_TIME_ENV, env)
  try:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 7.0)
    compilation_cache.enable()
    assert jax.config.jax_persistent_cache_min_compile_time_secs == expected  # 7.0: left alone
  finally:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", before)


@pytest.mark.parametrize("value,expected", [("0", None), ("off", None), ("No", None), ("1", "explicit"),
                                            ("", "explicit")])
def test_the_compilation_cache_setting(monkeypatch, tmp_path, value, expected):
  """MSSJAX_COMPILATION_CACHE=0 turns the cache off (read by every entry point before it compiles)."""
  from mssjax import compilation_cache  # pylint: disable=import-outside-toplevel
  monkeypatch.setenv("MSSJAX_COMPILATION_CACHE", value)
  monkeypatch.setenv("MSSJAX_COMPILATION_CACHE_DIR", str(tmp_path / "explicit"))
  folder = compilation_cache.cache_dir()
  assert (folder if folder is None else folder.name) == expected
  monkeypatch.delenv("MSSJAX_COMPILATION_CACHE_DIR")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  if expected is not None:
    assert compilation_cache.cache_dir() == tmp_path / "xdg" / "mssjax" / "jax"


@pytest.mark.parametrize("storage_dtype", ["float32", "float16"])
def test_export_weights_round_trip(workdir, tmp_path, capsys, storage_dtype):
  """A workdir exported to one weights file separates exactly as the workdir (float32), or nearly (float16)."""
  path = tmp_path / "tiny.safetensors"
  assert main(["export-weights", str(workdir), "-o", str(path), "--storage-dtype", storage_dtype]) == 0
  assert str(path) in capsys.readouterr().out
  from_workdir = separator_lib.unet_separator({"checkpoint": str(workdir)})
  from_file = separator_lib.unet_separator({"weights": str(path)})
  assert from_file.config.chunk_seconds == from_workdir.config.chunk_seconds
  mixture = np.random.default_rng(5).standard_normal((2, 30000)).astype(np.float32) * 0.1
  ours, theirs = from_file(mixture), from_workdir(mixture)
  for target in TARGETS:
    if storage_dtype == "float32":
      np.testing.assert_array_equal(ours[target], theirs[target])
    else:
      np.testing.assert_allclose(ours[target], theirs[target], atol=2e-3)


def test_bad_weights_files_are_one_line_errors(tmp_path, capsys):
  audio.save(tmp_path / "song.wav", np.zeros((2, 4410), np.float32))
  (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 100)
  assert main(["separate", str(tmp_path / "song.wav"), "--set", f"weights={tmp_path / 'bad.safetensors'}",
               "-o", str(tmp_path / "out"), "--quiet"]) == 2
  err = capsys.readouterr().err
  assert err.startswith(f"error: {tmp_path / 'bad.safetensors'}: not a readable safetensors") and err.count("\n") == 1
