"""Portable separators: a `jax.export` module of the chunk separator, and the network as ONNX.

``python -m mssjax export --method unet -o OUT`` (`export_separator`) writes

1. ``OUT``: the chunk separator of `mssjax.separate`, mixture ``[2, chunk]``
   float32 -> stems ``[len(targets), 2, chunk]``, traced once and serialised as StableHLO
   by `jax.export` (see JAX's "Exporting and serialization" guide): the STFT, the masks
   (or the whole network, its weights as constants) and the iSTFT are inside;
   it is lowered for every platform asked for (CPU and CUDA by default; no GPU
   is needed to lower for CUDA), and on CPU it runs the same blocked transforms
   as ``python -m mssjax separate``;
2. ``OUT.json``: the sample rate, chunk and overlap in samples, the targets, the
   platforms, the mssjax and jax versions, the module's SHA-256 and the
   separator's whole config.

`mssjax.deploy.exported` loads the pair with nothing of mssjax installed and joins the
chunks by the same overlap-add, so its stems equal ``mssjax separate``'s.

The module's length is fixed at the method's chunk (``chunk_seconds`` of its
config), not symbolic: `jax.export` cannot lower these separators for a
symbolic ``n`` because (a) `mssjax.spectral` picks its CPU block size and
computes the iSTFT's window-sum-square normaliser in numpy for a concrete
frame count, (b) the U-Net pads time to a multiple of ``2^depth`` and its
skip connections then concatenate encoder and decoder outputs whose symbolic
lengths jax cannot prove equal (``UNet._unet`` fails to concatenate), and (c)
`mssjax.decompose.hpss` compares its kernel with the frame count. The
loader zero-pads the last chunk, as `mssjax.separate` does, so a fixed length
costs nothing in equality.

ONNX, for the network only (jax2onnx, checked with onnxruntime against JAX):

- ``--onnx FILE`` (`export_masks_onnx`): the mask estimator, magnitude
  ``[1, 2, bins, frames]`` -> masks ``[1, 4, 2, bins, frames]``, its input the
  magnitude of `mssjax.spectral.stft` (n_fft and hop in its metadata);
- ``--onnx-separator FILE`` (`export_separator_onnx`): the whole chunk
  separator, mixture ``[2, chunk]`` -> stems ``[4, 2, chunk]``. ONNX has no
  complex tensors; jax2onnx (0.12.5 and 0.17.1 alike) packs the complex result
  of ``rfft`` into a trailing axis of two, which its other rules mishandle:
  ``|rfft(x)|`` converts to a graph whose output keeps that axis, a transpose
  of the packed spectrum fails in onnxruntime (perm size does not match the
  rank), and ``irfft`` does not convert ("IRFFT requires complex64 or
  complex128 input"). So the transforms are written as
  products with DFT matrices (`real_chunk_function`); every operator then
  converts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import pathlib
import time
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax import export as jax_export

import mssjax
from mssjax import fileio, models, separate, separators, spectral
from mssjax.deploy import exported
from mssjax.errors import ParameterError, check_choice
from mssjax.separators import Network, Separator
from mssjax.separators import network as network_lib

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
DEFAULT_PLATFORMS = ("cpu", "cuda")
ONNX_TOLERANCE = 1e-4
"""The largest difference of an ONNX file's outputs (masks, stems) from the JAX model's that the checks accept."""


class ExportResult(NamedTuple):
  """What `export_separator` wrote.

  Attributes:
    module: the serialised module file.
    metadata: its JSON.
    module_bytes: the module's size in bytes.
    seconds: time spent tracing, lowering and serialising.
  """

  module: pathlib.Path
  metadata: pathlib.Path
  module_bytes: int
  seconds: float


def check_platforms(platforms: Sequence[str]) -> tuple[str, ...]:
  """``platforms`` as a tuple of distinct known lowering platforms.

  Raises:
    ParameterError: an empty list or an unknown name (the valid ones listed).
  """
  platforms = tuple(dict.fromkeys(platforms))
  if not platforms:
    raise ParameterError(f"platforms=() must name at least one of {list(PLATFORMS)}")
  for platform in platforms:
    check_choice("platform", platform, PLATFORMS)
  return platforms


def chunk_function(separator: Separator) -> Callable[[jax.Array], jax.Array]:
  """The jax-traceable ``[2, n] -> [len(targets), 2, n]`` that `mssjax.separate` applies to each chunk.

  Raises:
    ParameterError: an oracle (it needs the true stems, which an exported
      separator does not have).
  """
  if separator.needs_references:
    raise ParameterError(f"method={separator.name!r} is an oracle: it needs the true stems, so it cannot be "
                         "exported as a separator of mixtures")
  return separator.chunk_function()


def _fixed_chunk(separator: Separator) -> tuple[int, int]:
  """``(chunk, overlap)`` in samples: an exported module has one input length.

  Raises:
    ParameterError: a separator that takes whole songs (``chunk_seconds=None``).
  """
  if separator.chunk_seconds is None:
    raise ParameterError(f"method={separator.name!r} separates whole songs (chunk_seconds=None); an exported "
                         "module has one input length: set chunk_seconds")
  return separate.chunk_samples(separator)


def metadata(separator: Separator, module: bytes, exported_module: jax_export.Exported) -> dict:
  """The JSON document written beside the module (what `mssjax.deploy.exported.read_metadata` reads)."""
  chunk, overlap = _fixed_chunk(separator)
  document = {
      "format": exported.FORMAT,
      "format_version": exported.FORMAT_VERSION,
      "method": separator.name,
      "sample_rate": separator.sample_rate,
      "channels": 2,
      "targets": list(separator.targets),
      "chunk_samples": chunk,
      "overlap_samples": overlap,
      "chunk_seconds": float(separator.chunk_seconds),
      "overlap_seconds": float(separator.overlap_seconds),
      "input": {"shape": [2, chunk], "dtype": "float32"},
      "output": {"shape": [len(separator.targets), 2, chunk], "dtype": "float32"},
      "platforms": list(exported_module.platforms),
      "calling_convention_version": exported_module.calling_convention_version,
      "mssjax_version": mssjax.__version__,
      "jax_version": jax.__version__,
      "n_parameters": int(separator.n_parameters),
      "module_bytes": len(module),
      "module_sha256": hashlib.sha256(module).hexdigest(),
      "config": json.loads(separator.config.to_json_best_effort()),
  }
  return {**document, "document_sha256": exported.document_digest(document)}


def export_separator(method: str, path: str | pathlib.Path, *,
                     config: ml_collections.ConfigDict | Mapping[str, Any] | None = None,
                     platforms: Sequence[str] = DEFAULT_PLATFORMS) -> ExportResult:
  """Exports separator ``method`` (built from ``config``, as `mssjax.separators.get`) to ``path`` and ``path.json``.

  Args:
    method: a registered separator that needs no references (``unet``,
      ``hpss_repet``, ``nmf``, ``mixture``).
    path: the module file to write; the JSON goes to ``path.json``. Both are
      written as a set (`mssjax.fileio.atomic_paths`).
    config: the separator's config or overrides of it; its ``chunk_seconds``
      is the module's fixed input length.
    platforms: the platforms to lower for.

  Raises:
    ParameterError: an unknown method, an oracle, bad settings or platforms.
    CheckpointError: a network that cannot be loaded.
  """
  platforms = check_platforms(platforms)
  separator = separators.get(method, config)
  chunk, _ = _fixed_chunk(separator)
  path = pathlib.Path(path)
  start = time.perf_counter()
  exported_module = jax_export.export(jax.jit(chunk_function(separator)), platforms=platforms)(
      jax.ShapeDtypeStruct((2, chunk), jnp.float32))
  module = bytes(exported_module.serialize())
  seconds = time.perf_counter() - start
  document = metadata(separator, module, exported_module)
  meta_path = exported.metadata_path(path)
  with fileio.atomic_paths([path, meta_path]) as (module_tmp, meta_tmp):
    module_tmp.write_bytes(module)
    meta_tmp.write_text(json.dumps(document, indent=2), encoding="utf-8")
  return ExportResult(path, meta_path, len(module), seconds)


# --- ONNX ---------------------------------------------------------------------------------------


class OnnxResult(NamedTuple):
  """What `export_masks_onnx` / `export_separator_onnx` wrote: the file, its size, its input shape and the
  check's largest absolute difference from JAX (NaN when not checked)."""

  path: pathlib.Path
  size_bytes: int
  input_shape: tuple[int, ...]
  max_abs_difference: float


def _network(separator: Separator) -> Network:
  """The separator's `Network`, a spectral one.

  Raises:
    ParameterError: a separator that is not a trained mask network, or a
      waveform network (`mssjax.models.DOMAINS`): it makes no masks, and
      jax2onnx (0.12) does not convert its channels-last 1-D convolutions
      ("Unsupported conv layouts"); its `jax.export` module serves instead.
  """
  if separator.network is None:
    raise ParameterError(f"method={separator.name!r} is not a trained mask network: only a network's masks "
                         "export to ONNX")
  network = separator.network
  if models.domain_of(nnx.merge(network.graphdef, separator.params)) == "waveform":
    raise ParameterError(f"model.name={network.model_config.model.name!r} is a waveform model: it makes no masks, "
                         "and jax2onnx cannot convert its 1-D convolutions, so it has no ONNX export; use the "
                         "jax.export module (python -m mssjax export without --onnx or --onnx-separator)")
  return network


def _network_separator(config: ml_collections.ConfigDict | Mapping[str, Any] | None) -> Separator:
  """The network separator a config names (its ``method``, ``"unet"`` where it names none)."""
  method = network_lib.method_of(config)
  if method not in separators.network_names():
    raise ParameterError(f"method={method!r} is not a network: ONNX converts one of {separators.network_names()}")
  return separators.get(method, config)


def mask_function(separator: Separator) -> Callable[[jax.Array], jax.Array]:
  """``magnitude [batch, 2, bins, frames] -> masks [batch, targets, 2, bins, frames]``, weights as constants.

  Raises:
    ParameterError: a network that does not make masks from magnitudes (`mssjax.models.DOMAINS`): a
      complex-mask model reads the complex STFT, which ONNX has no tensors for.
  """
  graphdef = _network(separator).graphdef
  domain = models.domain_of(nnx.merge(graphdef, separator.params))
  if domain != "magnitude":
    raise ParameterError(f"model {separator.network.model_config.model.name!r} is a {domain!r} model: the ONNX "
                         "export handles magnitude-mask networks only (ONNX has no complex tensors)")

  def masks(magnitude):
    return nnx.merge(graphdef, separator.params)(magnitude)
  return masks


def _onnx_metadata(separator: Separator, chunk: int) -> dict[str, str]:
  network = _network(separator)
  return {"mssjax_version": mssjax.__version__, "sample_rate": str(separator.sample_rate),
          "n_fft": str(network.n_fft), "hop_length": str(network.hop_length), "stft": "mssjax.spectral.stft",
          "chunk_samples": str(chunk), "targets": ",".join(separator.targets)}


@contextlib.contextmanager
def _quiet_logger(name: str):
  """Errors only from logger ``name`` inside the block (jax2onnx 0.12 logs a traceback for each of its
  plugins that does not import on this jax, dm_pix's among them, none of which the network uses)."""
  logger = logging.getLogger(name)
  level = logger.level
  logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(level)


def export_masks_onnx(path: str | pathlib.Path, *,
                      config: ml_collections.ConfigDict | Mapping[str, Any] | None = None,
                      check: bool = True) -> OnnxResult:
  """Converts the network's mask estimator to ONNX with jax2onnx, for one chunk's frames.

  Args:
    path: the ``.onnx`` file to write.
    config: the ``unet`` separator's config or overrides of it (which network,
      which chunk length).
    check: compare the ONNX masks (onnxruntime) with the JAX model's on a
      random magnitude (`check_masks_onnx`).

  Returns:
    an `OnnxResult`; its input is ``magnitude [1, 2, 1 + n_fft // 2, frames of one chunk]``.

  Raises:
    ParameterError: jax2onnx or onnxruntime not installed, or the check
      differs by more than `ONNX_TOLERANCE`.
  """
  jax2onnx, onnx = _onnx_modules()
  separator = _network_separator(config)
  network = _network(separator)
  chunk, _ = _fixed_chunk(separator)
  shape = (1, 2, 1 + network.n_fft // 2, spectral.n_frames_for(chunk, n_fft=network.n_fft,
                                                               hop_length=network.hop_length))
  with _quiet_logger("jax2onnx"):
    model = jax2onnx.to_onnx(mask_function(separator), [shape], model_name="mssjax_unet_masks",
                             input_names=["magnitude"], output_names=["masks"])
  onnx.helper.set_model_props(model, _onnx_metadata(separator, chunk))
  path = pathlib.Path(path)
  with fileio.atomic_path(path) as temporary:
    onnx.save(model, str(temporary))
  difference = check_masks_onnx(path, separator, shape) if check else float("nan")
  return OnnxResult(path, path.stat().st_size, shape, difference)


def _dft_kernels(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
  """``cos`` and ``sin`` of ``2 pi k t / n_fft``, float32 ``[1 + n_fft // 2, n_fft]`` (angles exact in integers)."""
  k, t = np.arange(1 + n_fft // 2)[:, None], np.arange(n_fft)[None, :]
  angle = 2 * np.pi * ((k * t) % n_fft) / n_fft
  return np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)


def real_chunk_function(separator: Separator, chunk: int) -> Callable[[jax.Array], jax.Array]:
  """The network's chunk separator ``[2, chunk] -> [targets, 2, chunk]`` in real arithmetic, for ONNX.

  The transforms of `mssjax.spectral` (plain masking: ``wiener_iterations=0``)
  with their FFTs written as products with DFT matrices, which ONNX has
  (MatMul) and jax2onnx converts:

  1. the mixture is zero-padded by ``n_fft // 2`` and cut into windowed
     frames by `mssjax.spectral`'s own framing (``_frame``);
  2. real and imaginary parts: ``frames @ cos^T`` and ``-frames @ sin^T``
     (the ``rfft``); the network's masks scale both;
  3. the ``irfft`` of the masked spectra: ``(g re) @ cos - (g im) @ sin`` with
     ``g = 1 / n_fft`` at DC and Nyquist and ``2 / n_fft`` between, windowed,
     overlap-added by spectral's ``_overlap_add``, trimmed and divided by
     the window-sum-square exactly as `mssjax.spectral.istft` does.

  Raises:
    ParameterError: a network with ``wiener_iterations > 0`` (the EM filter
      stays in JAX) or an odd ``n_fft``.
  """
  network = _network(separator)
  if network.wiener_iterations:
    raise ParameterError(f"wiener_iterations={network.wiener_iterations}: the ONNX separator does plain "
                         "masking only; export with --set wiener_iterations=0")
  if network.shifts != 1 or network.channel_swap:
    raise ParameterError(f"shifts={network.shifts}, channel_swap={network.channel_swap}: the ONNX separator "
                         "runs one pass; export with --set shifts=1 --set channel_swap=False")
  n_fft, hop = network.n_fft, network.hop_length
  if n_fft % 2:
    raise ParameterError(f"n_fft={n_fft}: the ONNX separator's inverse DFT weights assume an even n_fft")
  cos, sin = _dft_kernels(n_fft)
  weights = np.full((1 + n_fft // 2, 1), 2.0 / n_fft, np.float32)
  weights[0] = weights[-1] = 1.0 / n_fft  # DC and Nyquist appear once in the full spectrum
  n_frames = spectral.n_frames_for(chunk, n_fft=n_fft, hop_length=hop)
  # pylint: disable=protected-access  # the one framing, overlap-add and normaliser of mssjax.spectral
  win, inv = spectral._istft_normaliser("hann", None, n_fft, hop, n_frames, n_fft // 2, chunk)
  win32 = win.astype(np.float32)
  masks_of = mask_function(separator)

  def separate_chunk(mixture):
    x = jnp.pad(mixture, ((0, 0), (n_fft // 2, n_fft // 2)))
    frames = spectral._frame(x, jnp.asarray(win32), hop)  # [2, frames, n_fft]
    real = jnp.einsum("ctn,kn->ckt", frames, cos)  # [2, bins, frames]; one copy of each matrix in the graph
    imag = -jnp.einsum("ctn,kn->ckt", frames, sin)
    masks = masks_of(jnp.sqrt(real ** 2 + imag ** 2)[None])[0]  # [targets, 2, bins, frames]
    real, imag = masks * real * weights, masks * imag * weights
    out = (jnp.einsum("sckt,kn->sctn", real, cos) - jnp.einsum("sckt,kn->sctn", imag, sin)) * win32
    y = spectral._overlap_add(out, hop)[..., n_fft // 2:n_fft // 2 + chunk]
    return y * inv.astype(np.float32)

  return separate_chunk


def export_separator_onnx(path: str | pathlib.Path, *,
                          config: ml_collections.ConfigDict | Mapping[str, Any] | None = None,
                          check: bool = True) -> OnnxResult:
  """The network's whole chunk separator as ONNX: mixture ``[2, chunk]`` -> stems ``[targets, 2, chunk]``.

  The STFT and iSTFT are products with DFT matrices (`real_chunk_function`),
  so the graph needs no complex tensors. With ``check``, its stems on a
  noise chunk are compared with the jitted JAX chunk separator's.

  Raises:
    ParameterError: jax2onnx, onnx or onnxruntime missing, a network with a
      Wiener filter, or a check that differs by more than `ONNX_TOLERANCE`.
  """
  jax2onnx, onnx = _onnx_modules()
  separator = _network_separator(config)
  chunk, _ = _fixed_chunk(separator)
  fn = real_chunk_function(separator, chunk)
  with _quiet_logger("jax2onnx"):
    model = jax2onnx.to_onnx(fn, [(2, chunk)], model_name="mssjax_unet_separator", input_names=["mixture"],
                             output_names=["stems"])
  onnx.helper.set_model_props(model, _onnx_metadata(separator, chunk))
  path = pathlib.Path(path)
  with fileio.atomic_path(path) as temporary:
    onnx.save(model, str(temporary))
  difference = float("nan")
  if check:
    mixture = 0.1 * np.random.default_rng(0).standard_normal((2, chunk)).astype(np.float32)
    got = _onnx_session(path).run(["stems"], {"mixture": mixture})[0]
    want = np.asarray(jax.jit(chunk_function(separator))(mixture))
    difference = _checked_difference(path, got, want, what="stems")
  return OnnxResult(path, path.stat().st_size, (2, chunk), difference)


def _onnx_modules():
  try:
    import jax2onnx  # pylint: disable=import-outside-toplevel  # a dev extra, only for --onnx
    import onnx  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ParameterError(f"ONNX export needs jax2onnx and onnx ({e}); pip install 'jax2onnx>=0.12.5,<0.13' "
                         "onnxruntime") from e
  return jax2onnx, onnx


def _onnx_session(path):
  try:
    import onnxruntime  # pylint: disable=import-outside-toplevel  # a dev extra
  except ImportError as e:
    raise ParameterError(f"checking an ONNX file needs onnxruntime ({e})") from e
  options = onnxruntime.SessionOptions()
  options.log_severity_level = 3  # errors only (not its notes on unused initialisers)
  return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _checked_difference(path, got, want, *, what):
  difference = float(np.max(np.abs(got - want)))
  if not difference <= ONNX_TOLERANCE:
    raise ParameterError(f"{path}: the ONNX {what} differ from the JAX model's by {difference:.3g} "
                         f"(more than {ONNX_TOLERANCE})")
  return difference


def check_masks_onnx(path: str | pathlib.Path, separator: Separator, shape: tuple[int, ...], *,
                     seed: int = 0) -> float:
  """Largest absolute difference of the ONNX masks (onnxruntime, CPU) from the JAX model's.

  The magnitude is that of a random stereo chunk (`mssjax.spectral.stft` of
  Gaussian noise at -20 dB), so the network sees spectrogram-like inputs.

  Raises:
    ParameterError: onnxruntime is not installed, or the difference exceeds `ONNX_TOLERANCE`.
  """
  network = _network(separator)
  n = network.hop_length * (shape[-1] - 1)
  noise = 0.1 * np.random.default_rng(seed).standard_normal((2, n)).astype(np.float32)
  magnitude = np.asarray(jnp.abs(spectral.stft(noise, n_fft=network.n_fft, hop_length=network.hop_length)))
  magnitude = magnitude[None, ..., :shape[-1]]
  got = _onnx_session(path).run(["masks"], {"magnitude": magnitude})[0]
  want = np.asarray(jax.jit(mask_function(separator))(magnitude))
  return _checked_difference(path, got, want, what="masks")
