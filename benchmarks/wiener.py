"""Why does the multichannel Wiener filter help Open-Unmix and not the unet? (issue #34)

Run (from the repository root; about a minute per variant on the 2-core CPU):
  python benchmarks/wiener.py                                   # the shipped unet
  python benchmarks/wiener.py --method umx --checkpoint WORKDIR # a trained umx workdir
  python benchmarks/wiener.py --variants masks,wiener1          # some variants only

Separates the 14 MUSDB18 validation previews (subset train, split valid) with
one network, feeding its estimates to several filters, and scores each with
evaluate.py's loop (`mssjax.evaluation.loop.run_loop`, the config of
``configs/evaluate.py``: BSSEval v4, 1 s windows and hops, median over frames
then tracks), one workdir per variant under ``--workdir`` (a re-run skips
finished tracks). The network is the separator's own (`mssjax.separators.get`:
its chunks, STFT and padding); only the step from its magnitude estimates
``V_j = M_j |X|`` to complex estimates changes:

- ``masks``: ``M_j X``, the network's masks on the mixture (``wiener_iterations=0``);
- ``ratio``: ``V_j / sum_k V_k X``, the estimates made to sum to the mixture
  (norbert's ``softmask`` start, no EM; the same as ``masks`` for a softmax network);
- ``squared``: ``V_j^2 / sum_k V_k^2 X``, the single-channel Wiener mask of the
  PSDs ``V_j^2`` (what one EM iteration reduces to without a spatial model);
- ``wiener1``, ``wiener2``: `mssjax.filtering.wiener`, 1 and 2 EM iterations,
  as the separator runs it (``wiener_iterations``);
- ``wiener1_umx``: the call of open-unmix's ``Separator`` (``softmask=False``:
  the magnitudes with the mixture phase, ``eps=1e-10``);
- ``wiener1_mono``: 1 EM iteration on each channel alone (no inter-channel
  covariance): the part of ``wiener1`` that is the PSDs ``V_j^2``;
- ``wiener1_power``: 1 EM iteration on ``sqrt(V_j |X|)``, so that the EM's PSDs
  are ``M_j |X|^2``: the masks read as power ratios, the spatial model alone acting;
- ``wiener1_residual``: open-unmix's ``residual=True``: a fifth source
  ``X - sum_j V_j e^{i angle X}`` joins the EM and is dropped after it.

Prints the SDR pivot and the mean SIR / SAR of every variant and writes
``WORKDIR/wiener.md``.
"""

import argparse
import dataclasses
import pathlib
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import configs.evaluate  # pylint: disable=wrong-import-position
from mssjax import compilation_cache, filtering, models, separators, spectral  # pylint: disable=wrong-import-position
from mssjax.data.tracks import open_tracks  # pylint: disable=wrong-import-position
from mssjax.evaluation import loop as evaluate_lib  # pylint: disable=wrong-import-position
from mssjax.metrics import store  # pylint: disable=wrong-import-position

ROOT = REPO.parent / "shared" / "data" / "musdb18-7"
EPS = float(np.finfo(np.float32).eps)


def _sources_first(f):
  """A filter of ``[sources, batch, C, F, N]`` as one of ``[batch, sources, C, F, N]``."""
  return lambda V, X: jnp.moveaxis(f(jnp.moveaxis(V, 1, 0), X), 0, 1)


def _ratio(V, X, power):
  return V ** power / (EPS + jnp.sum(V ** power, axis=1, keepdims=True)) * X[:, None]


def _mono(V, X):
  """1 EM iteration on each channel alone: channels moved to the batch axis."""
  b, c = X.shape[:2]
  out = filtering.wiener(jnp.moveaxis(V, 1, 0).reshape((V.shape[1], b * c, 1) + V.shape[3:]),
                         X.reshape((b * c, 1) + X.shape[2:]), iterations=1)
  return jnp.moveaxis(out.reshape((V.shape[1],) + X.shape), 0, 1)


def _residual(V, X):
  """open-unmix's ``residual=True``: the mixture minus the estimates joins the EM as one more source."""
  Y = V * jnp.exp(1j * jnp.angle(X))[:, None]
  Y = jnp.concatenate([Y, X[:, None] - jnp.sum(Y, axis=1, keepdims=True)], axis=1)
  out = filtering.expectation_maximization(jnp.moveaxis(Y, 1, 0), X, iterations=1, eps=1e-10)
  return jnp.moveaxis(out[:-1], 0, 1)


VARIANTS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "masks": None,  # the network's own estimates
    "ratio": lambda V, X: _ratio(V, X, 1),
    "squared": lambda V, X: _ratio(V, X, 2),
    "wiener1": _sources_first(lambda V, X: filtering.wiener(V, X, iterations=1)),
    "wiener2": _sources_first(lambda V, X: filtering.wiener(V, X, iterations=2)),
    "wiener1_umx": _sources_first(lambda V, X: filtering.wiener(V, X, iterations=1, softmask=False, eps=1e-10)),
    "wiener1_mono": _mono,
    "wiener1_power": _sources_first(
        lambda V, X: filtering.wiener(jnp.sqrt(V * jnp.abs(X)), X, iterations=1, softmask=False)),
    "wiener1_residual": _residual,
}
"""Filters ``(magnitudes [B, T, C, F, N], mixture STFT [B, C, F, N]) -> complex [B, T, C, F, N]``."""


def variant_separator(base: separators.Separator, name: str) -> separators.Separator:
  """``base`` (a spectral network's separator) with its estimates passed through filter ``name``."""
  net, variant = base.network, VARIANTS[name]

  def apply(params, mixture):  # [2, n] -> [targets, 2, n]
    model = nnx.merge(net.graphdef, params)
    X = spectral.stft(mixture[None], n_fft=net.n_fft, hop_length=net.hop_length)
    estimates, magnitudes = models.spectrogram_estimates(model, X)
    Y = estimates if variant is None else variant(magnitudes, X)
    return spectral.istft(Y, n_fft=net.n_fft, hop_length=net.hop_length, length=mixture.shape[-1])[0]

  return dataclasses.replace(base, name=name, apply=apply, network=None)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--root", default=str(ROOT), help="MUSDB18 (here the 7 s previews)")
  parser.add_argument("--method", default="unet", help="a spectral network of mssjax.separators")
  parser.add_argument("--checkpoint", default="", help="its training workdir (default: the pretrained weights)")
  parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
  parser.add_argument("--workdir", default="")
  args = parser.parse_args()
  names = args.variants.split(",")
  unknown = sorted(set(names) - set(VARIANTS))
  if unknown:
    raise SystemExit(f"unknown variants {unknown}: choose from {list(VARIANTS)}")
  compilation_cache.enable()
  workdir = pathlib.Path(args.workdir or REPO / "outputs" / f"wiener_{args.method}")
  config = configs.evaluate.get_config()
  config.data.root, config.data.subset, config.data.split = args.root, "train", "valid"
  config.report.enabled, config.progress = False, False
  base = separators.get(args.method, {"checkpoint": args.checkpoint, "wiener_iterations": 0})
  tracks = open_tracks(pathlib.Path(args.root), subset="train", split="valid")
  rows, seconds = [], {}
  for name in names:
    start = time.perf_counter()
    summary = evaluate_lib.run_loop(config, workdir / name, {name: variant_separator(base, name)}, tracks)
    if summary["failures"]:
      raise SystemExit(f"{name}: {len(summary['failures'])} tracks failed: {summary['failures'][:3]}")
    seconds[name] = time.perf_counter() - start
    rows += store.write_tables(workdir / name, [name], subset="train", tracks=[t.name for t in tracks])
    print(f"{name}: {seconds[name]:.0f} s", flush=True)
  lines = [f"{args.method} ({args.checkpoint or 'pretrained'}), {len(tracks)} validation previews", "",
           store.markdown_pivot(rows, "SDR"), "Mean over targets of SIR / SAR (dB):", ""]
  for metric in ("SIR", "SAR"):
    _, pivot = store.pivot_rows(rows, metric)
    lines.append(f"- {metric}: " + ", ".join(f"{e['method']} {e['average']:.2f}" for e in pivot))
  lines += ["", "seconds per variant (separation and scoring, compilation included): "
            + ", ".join(f"{k} {s:.0f}" for k, s in seconds.items())]
  text = "\n".join(lines) + "\n"
  print(text)
  (workdir / "wiener.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
  main()
