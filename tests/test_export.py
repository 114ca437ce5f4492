"""Tests of ``python -m mssjax export`` (mssjax.deploy.export) and the standalone loader (mssjax.deploy.exported).

Each artifact is exported once per module (fixtures in ``tmp_path_factory``):
the shipped network with its own chunking, and hpss_repet in 3 s chunks so
that a short song spans several. Their stems are compared with those of
``python -m mssjax separate`` on the example mixture (`conftest.mixture_example`).
"""

import ast
import hashlib
import importlib.util
import json
import pathlib
import shutil
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

from mssjax import TARGETS, audio, separate, separators, spectral
from mssjax.deploy import export
from mssjax.deploy import exported
from mssjax.__main__ import main
from mssjax.errors import ParameterError

REPO = pathlib.Path(__file__).resolve().parents[1]
HPSS_SETTINGS = ["--set", "chunk_seconds=3", "--set", "overlap_seconds=0.5"]
FULL_SCALE_TOLERANCE = 1e-5


HAVE_JAX2ONNX = importlib.util.find_spec("jax2onnx") is not None  # the dev extra installs it on Python 3.11+


@pytest.fixture(scope="module")
def unet_artifact(tmp_path_factory):
  """The shipped network exported by the command line (module, JSON and, with jax2onnx, the ONNX files)."""
  folder = tmp_path_factory.mktemp("unet")
  onnx = ["--onnx", str(folder / "masks.onnx"), "--onnx-separator", str(folder / "separator.onnx")]
  assert main(["export", "--method", "unet", "-o", str(folder / "unet.jaxexport")]
              + (onnx if HAVE_JAX2ONNX else [])) == 0
  return folder / "unet.jaxexport"


@pytest.fixture(scope="module")
def hpss_artifact(tmp_path_factory):
  path = tmp_path_factory.mktemp("hpss") / "hpss_repet.jaxexport"
  assert main(["export", "--method", "hpss_repet", "-o", str(path), "--platforms", "cpu"] + HPSS_SETTINGS) == 0
  return path


@pytest.fixture(scope="module")
def song(mixture_example):
  """The example mixture (10.9 s, 44.1 kHz stereo) as decoded by mssjax."""
  (mixture,), rate = audio.read(mixture_example, streams=[0])
  assert rate == 44100 and mixture.shape[0] == 2
  return mixture


def _separate_command(song_path, out, extra=()):
  """The stems ``python -m mssjax separate`` writes (FLOAT wav, so lossless), ``[4, 2, n]``."""
  assert main(["separate", str(song_path), "-o", str(out), "--quiet", *extra]) == 0
  folder = separate.output_folders([song_path], out)[0]
  return np.stack([sf.read(folder / f"{t}.wav", dtype="float32", always_2d=True)[0].T for t in TARGETS])


def _standalone_loader(tmp_path):
  """``exported.py`` copied alone into a folder, as an application without mssjax would hold it."""
  folder = tmp_path / "app"
  folder.mkdir()
  shutil.copy(REPO / "mssjax" / "deploy" / "exported.py", folder / "exported.py")
  return folder


def test_loader_imports_only_jax_numpy_and_the_standard_library():
  tree = ast.parse((REPO / "mssjax" / "deploy" / "exported.py").read_text())
  imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
              for alias in node.names}
  imported |= {node.module.split(".")[0] for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and node.module and not node.level}
  assert not any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree))
  assert imported - {"jax", "numpy"} <= set(sys.stdlib_module_names), imported


def test_metadata_describes_the_module(unet_artifact):
  document = json.loads(exported.metadata_path(unet_artifact).read_text())
  assert document["format"] == exported.FORMAT and document["format_version"] == exported.FORMAT_VERSION
  assert document["targets"] == list(TARGETS) and document["sample_rate"] == 44100
  unet = separators.get("unet")
  assert (document["chunk_samples"], document["overlap_samples"]) == separate.chunk_samples(unet)
  assert document["platforms"] == ["cpu", "cuda"]  # CUDA lowered without a GPU
  assert document["module_bytes"] == unet_artifact.stat().st_size
  assert document["module_sha256"] == hashlib.sha256(unet_artifact.read_bytes()).hexdigest()
  assert document["n_parameters"] == unet.n_parameters and document["config"]["method"] == "unet"


@pytest.mark.realdata
def test_standalone_loader_imports_no_mssjax_and_equals_separate(unet_artifact, song, mixture_example, tmp_path):
  """A fresh interpreter with only exported.py runs the network; its stems equal ``mssjax separate``'s."""
  app = _standalone_loader(tmp_path)
  np.save(tmp_path / "mixture.npy", song)
  script = textwrap.dedent(f"""
      import sys
      sys.path.insert(0, {str(app)!r})
      import numpy as np
      import exported
      separator = exported.load({str(unet_artifact)!r})
      stems = separator.separate(np.load({str(tmp_path / "mixture.npy")!r}), sample_rate=44100)
      np.save({str(tmp_path / "stems.npy")!r}, np.stack([stems[t] for t in separator.targets]))
      print(sorted({{m.split(".")[0] for m in sys.modules}}))
  """)
  done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  loaded = set(eval(done.stdout.strip().splitlines()[-1]))  # pylint: disable=eval-used
  # jax itself imports scipy (one of its own dependencies) when it compiles; nothing of mssjax's is there
  assert not loaded & {"mssjax", "flax", "ml_collections", "optax", "orbax", "librosa", "soundfile", "av", "soxr",
                       "tensorflow", "torch"}
  want = _separate_command(mixture_example, tmp_path / "separated")
  got = np.load(tmp_path / "stems.npy")
  assert got.shape == want.shape == (4,) + song.shape
  assert np.max(np.abs(got - want)) <= FULL_SCALE_TOLERANCE


@pytest.mark.realdata
def test_classical_method_equals_separate_over_several_chunks(hpss_artifact, song, mixture_example, tmp_path):
  separator = exported.load(hpss_artifact)
  assert (separator.metadata.chunk_samples, separator.metadata.overlap_samples) == (3 * 44100, 22050)
  assert len(exported.chunk_starts(song.shape[-1], 3 * 44100, 22050)) == 5
  stems = separator.separate(song)
  got = np.stack([stems[t] for t in TARGETS])
  want = _separate_command(mixture_example, tmp_path / "separated", ["--method", "hpss_repet", *HPSS_SETTINGS])
  assert np.max(np.abs(got - want)) <= FULL_SCALE_TOLERANCE


@pytest.mark.realdata
def test_onnx_masks_equal_the_jax_model_on_a_song(unet_artifact, song):
  pytest.importorskip("jax2onnx")
  onnx = pytest.importorskip("onnx")
  onnxruntime = pytest.importorskip("onnxruntime")
  unet = separators.get("unet")
  chunk, _ = separate.chunk_samples(unet)
  network = unet.network
  magnitude = np.asarray(jnp.abs(spectral.stft(song[:, :chunk], n_fft=network.n_fft, hop_length=network.hop_length)))
  session = onnxruntime.InferenceSession(str(unet_artifact.parent / "masks.onnx"),
                                         providers=["CPUExecutionProvider"])
  got = session.run(["masks"], {"magnitude": magnitude[None]})[0]
  want = np.asarray(jax.jit(export.mask_function(unet))(magnitude[None]))
  assert got.shape == want.shape == (1, 4, 2, 1 + unet.network.n_fft // 2, magnitude.shape[-1])
  assert np.max(np.abs(got - want)) <= export.ONNX_TOLERANCE
  properties = {p.key: p.value for p in onnx.load(str(unet_artifact.parent / "masks.onnx")).metadata_props}
  assert properties["n_fft"] == str(unet.network.n_fft) and properties["targets"] == ",".join(TARGETS)


@pytest.mark.realdata
def test_onnx_separator_by_overlap_add_equals_separate(unet_artifact, song, mixture_example, tmp_path):
  """The whole network (DFT-matrix STFT, masks, iSTFT) in onnxruntime, joined by the loader's overlap-add."""
  pytest.importorskip("jax2onnx")
  onnxruntime = pytest.importorskip("onnxruntime")
  session = onnxruntime.InferenceSession(str(unet_artifact.parent / "separator.onnx"),
                                         providers=["CPUExecutionProvider"])
  meta = exported.read_metadata(unet_artifact)
  got = exported.overlap_add(lambda chunk: session.run(["stems"], {"mixture": chunk})[0], song,
                             chunk_samples=meta.chunk_samples, overlap_samples=meta.overlap_samples)
  want = _separate_command(mixture_example, tmp_path / "separated")
  assert np.max(np.abs(got - want)) <= export.ONNX_TOLERANCE


def test_real_arithmetic_transforms_equal_spectral():
  """The ONNX separator's DFT matrices, framing and normaliser give `spectral.stft` / `istft`'s chunk (a tiny net)."""
  unet = separators.get("unet")
  chunk = 3 * unet.network.hop_length + 17
  x = 0.1 * np.random.default_rng(1).standard_normal((2, chunk)).astype(np.float32)
  got = np.asarray(jax.jit(export.real_chunk_function(unet, chunk))(x))
  want = np.asarray(jax.jit(export.chunk_function(unet))(x))
  np.testing.assert_allclose(got, want, atol=1e-5)
  np.testing.assert_allclose(got.sum(axis=0), x, atol=1e-5)  # softmax masks: the stems add up to the mixture
  with pytest.raises(ParameterError, match="wiener_iterations=1"):
    export.real_chunk_function(separators.get("unet", {"wiener_iterations": 1}), chunk)


@pytest.fixture(scope="module")
def mixture_artifact(tmp_path_factory):
  """The cheapest separator (every stem is the mixture) in 0.5 s chunks: for the loader's own checks."""
  path = tmp_path_factory.mktemp("mixture") / "mixture.jaxexport"
  export.export_separator("mixture", path, config={"chunk_seconds": 0.5, "overlap_seconds": 0.1}, platforms=["cpu"])
  return path


@pytest.mark.parametrize("shape", [(2, 30000), (30000,), (1, 30000), (3, 30000), (2, 20000), (2, 100)])
def test_loader_channels_and_lengths_as_separate(mixture_artifact, shape):
  mixture = np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32)
  got = exported.load(mixture_artifact).separate(mixture)
  config = separators.make_config("mixture", {"chunk_seconds": 0.5, "overlap_seconds": 0.1})
  want = separate.separate_array(separators.get("mixture", config), mixture, sample_rate=44100)
  for target in TARGETS:
    assert got[target].shape == shape
    np.testing.assert_array_equal(got[target], want[target])


@pytest.mark.parametrize("n,chunk,overlap", [(1000, 300, 50), (1000, 300, 0), (17, 300, 100), (5000, 1000, 999)])
def test_overlap_add_is_that_of_separate(n, chunk, overlap):
  x = np.random.default_rng(n).standard_normal((2, n)).astype(np.float32)
  fn = lambda c: np.stack([np.sin(c), c ** 2])  # pylint: disable=unnecessary-lambda-assignment
  np.testing.assert_array_equal(exported.overlap_add(fn, x, chunk_samples=chunk, overlap_samples=overlap),
                                separate.separate_in_chunks(fn, x, chunk_samples=chunk, overlap_samples=overlap))
  assert exported.chunk_starts(n, chunk, overlap) == separate.chunk_starts(n, chunk, overlap)


def _copy(artifact, folder):
  folder.mkdir()
  target = folder / artifact.name
  shutil.copy(artifact, target)
  shutil.copy(exported.metadata_path(artifact), exported.metadata_path(target))
  return target


def _edit_metadata(path, *, digest=True, **changes):
  """Changes fields of a module's JSON; ``digest``: as a deliberate editor would, updating document_sha256."""
  meta = exported.metadata_path(path)
  document = json.loads(meta.read_text())
  document.update(changes)
  if digest:
    document["document_sha256"] = exported.document_digest(document)
  meta.write_text(json.dumps(document))


def test_missing_files_are_errors_naming_them(mixture_artifact, tmp_path):
  with pytest.raises(exported.ExportedError, match=r"nothing\.jaxexport\.json: no such file"):
    exported.load(tmp_path / "nothing.jaxexport")
  copy = _copy(mixture_artifact, tmp_path / "a")
  copy.unlink()
  with pytest.raises(exported.ExportedError, match=rf"{copy.name}: no such file"):
    exported.load(copy)


def test_corrupt_module_is_an_error_naming_it(mixture_artifact, tmp_path):
  copy = _copy(mixture_artifact, tmp_path / "a")
  data = bytearray(copy.read_bytes())
  data[len(data) // 2] ^= 0xFF
  copy.write_bytes(bytes(data))
  with pytest.raises(exported.ExportedError, match=rf"{copy}: corrupt or replaced"):
    exported.load(copy)
  _edit_metadata(copy, module_sha256=hashlib.sha256(b"garbage").hexdigest())
  copy.write_bytes(b"garbage")
  with pytest.raises(exported.ExportedError, match=rf"{copy}: this jax .* cannot read the module"):
    exported.load(copy)


@pytest.mark.parametrize("changes,message", [
    ({"format_version": exported.FORMAT_VERSION + 1},
     f"format_version={exported.FORMAT_VERSION + 1}, but this loader reads format_version={exported.FORMAT_VERSION}"),
    ({"format": "something-else"}, "not an mssjax exported separator"),
    ({"chunk_samples": 12345}, "the module maps"),
    ({"overlap_samples": 10 ** 9}, "overlap_samples=1000000000 must be in"),
    ({"sample_rate": "44100"}, "malformed metadata"),
])
def test_incompatible_metadata_is_an_error_naming_the_file(mixture_artifact, tmp_path, changes, message):
  copy = _copy(mixture_artifact, tmp_path / "a")
  _edit_metadata(copy, **changes)
  with pytest.raises(exported.ExportedError, match=message) as error:
    exported.load(copy)
  assert copy.name in str(error.value)


@pytest.mark.parametrize("changes", [{"targets": ["drums", "vocals", "bass", "other"]}, {"sample_rate": 8000},
                                     {"overlap_samples": 0}, {"method": "unet"}])
def test_an_edited_field_is_an_error_not_a_wrong_result(mixture_artifact, tmp_path, changes):
  """Swapped targets would make ``separate(x)["vocals"]`` the drums, another rate would run the module on
  audio it was not made for: the JSON's digest of its own fields refuses every such edit."""
  copy = _copy(mixture_artifact, tmp_path / "a")
  _edit_metadata(copy, digest=False, **changes)
  with pytest.raises(exported.ExportedError, match=r"\.json: its fields were edited or damaged after export"):
    exported.load(copy)


def test_unreadable_metadata_is_an_error(mixture_artifact, tmp_path):
  copy = _copy(mixture_artifact, tmp_path / "a")
  exported.metadata_path(copy).write_text("{not json")
  with pytest.raises(exported.ExportedError, match=r"\.json: not a readable JSON document"):
    exported.load(copy)


def test_other_platform_is_an_error(tmp_path):
  path = tmp_path / "cuda_only.jaxexport"
  export.export_separator("mixture", path, config={"chunk_seconds": 0.1, "overlap_seconds": 0.0},
                          platforms=["cuda"])
  with pytest.raises(exported.ExportedError, match=r"exported for cuda, but jax here runs on cpu"):
    exported.load(path)


def test_bad_mixtures_are_errors(mixture_artifact):
  separator = exported.load(mixture_artifact)
  with pytest.raises(exported.ExportedError, match="resample the 22050 Hz mixture first"):
    separator.separate(np.zeros((2, 100), np.float32), sample_rate=22050)
  with pytest.raises(exported.ExportedError, match="NaN or Inf"):
    separator.separate(np.full((2, 100), np.nan, np.float32))
  with pytest.raises(exported.ExportedError, match=r"must be \[channels, n_samples\]"):
    separator.separate(np.zeros((2, 2, 100), np.float32))


@pytest.mark.parametrize("argv,message", [
    (["--method", "irm2"], "is an oracle"),
    (["--method", "hpss_repet", "--onnx", "x.onnx"], "has none"),
    (["--method", "nmf", "--onnx-separator", "x.onnx"], "has none"),
    (["--platforms", "gpu"], "platform='gpu' is not known"),
    (["--method", "nope"], "separator='nope' is not known"),
    (["--method", "hpss_repet", "--set", "chunk_seconds=-1"], "chunk_seconds=-1"),
])
def test_bad_export_commands_are_one_line_errors(argv, message, tmp_path, capsys):
  assert main(["export", "-o", str(tmp_path / "out"), *argv]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and message in err and "Traceback" not in err
  assert not (tmp_path / "out").exists()


def test_check_platforms():
  assert export.check_platforms(["cpu", "cuda", "cpu"]) == ("cpu", "cuda")
  with pytest.raises(ParameterError, match="at least one"):
    export.check_platforms([])
