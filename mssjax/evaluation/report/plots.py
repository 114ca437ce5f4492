"""Matplotlib figures of the report: box plots, distributions, complexity against quality, spectrogram
comparisons."""

from __future__ import annotations

import math
import os
import pathlib
from typing import Any, Mapping, NamedTuple, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402

from mssjax import TARGETS, fileio, spectral  # noqa: E402

PLOT_METRICS = ("SDR", "SIR", "SAR", "ISR")
OFF_AXIS_DB = 40.0
"""A method whose median lies this far beyond every other method's values in a panel is left off that axis,
its median written under its tick: the mixture's SAR and ISR on real songs (about 130 dB: the mixture has no
artefacts and the whole target image) would otherwise flatten every real method onto the panel's floor."""


def _grid(n_rows, n_cols, size=(3.2, 2.6)):
  fig, axes = plt.subplots(n_rows, n_cols, figsize=(size[0] * n_cols, size[1] * n_rows), squeeze=False)
  return fig, axes


def _targets(rows):
  seen = [t for t in TARGETS if any(r["target"] == t for r in rows)]
  return seen + sorted({r["target"] for r in rows} - set(seen))


def _values(rows, method, target, metric, per_track):
  out = []
  for r in rows:
    if r["method"] == method and r["target"] == target and r["metric"] == metric:
      frames = r["frames"][~np.isnan(r["frames"])]
      if per_track:
        out += [float(np.median(frames))] if frames.size else []
      else:
        out += frames.tolist()
  return out


def _save(fig, path, dpi):
  """Saves ``fig`` atomically (`mssjax.fileio`), in the format of ``path``'s suffix, and closes it."""
  try:
    with fileio.atomic_path(path) as temporary:
      fig.savefig(temporary, format=pathlib.Path(path).suffix.lstrip(".") or "png", dpi=dpi)
  finally:
    plt.close(fig)


def _off_axis(values_by_method):
  """The methods whose median lies `OFF_AXIS_DB` beyond all the other methods' values."""
  off = set()
  for method, values in values_by_method.items():
    others = [v for m, vs in values_by_method.items() if m != method for v in vs if np.isfinite(v)]
    finite = [v for v in values if np.isfinite(v)]
    if finite and others:
      median = np.median(finite)
      off |= {method} if median > max(others) + OFF_AXIS_DB or median < min(others) - OFF_AXIS_DB else set()
  return off


def _panel(ax, rows, methods, target, metric, per_track):
  """One box / violin panel; a method far off the others' range (`OFF_AXIS_DB`) is an empty slot labelled
  with its median."""
  values_by_method = {m: _values(rows, m, target, metric, per_track) for m in methods}
  off = _off_axis(values_by_method)
  labels, data = [], []
  for method in methods:
    values = values_by_method[method]
    if method in off:
      labels.append(f"{method}\n({np.median(values):.0f} dB,\noff axis)")
      values = []
    else:
      labels.append(method)
    data.append(values if values else [np.nan])
  if per_track:
    ax.boxplot(data, showmeans=False)
  else:
    ax.violinplot([d if np.isfinite(d).any() else [0.0] for d in data], showmedians=True)
  ax.set_xticks(range(1, len(methods) + 1), labels, rotation=30, fontsize=7)
  ax.set_title(f"{target} {metric}", fontsize=9)
  ax.set_ylabel("dB", fontsize=8)
  ax.grid(alpha=0.3)


def metric_figure(rows: Sequence[Mapping[str, Any]], methods: Sequence[str], path: str | os.PathLike, *,
                  per_track: bool = True) -> None:
  """Box plots (per-track medians) or violin plots (all frames) per metric, target and method.

  A method far beyond the others in a panel (the mixture's SAR and ISR on real songs, `OFF_AXIS_DB`) is
  left off that axis, its median written under its tick.

  Args:
    rows: `mssjax.metrics.store.load_scores` rows (``"frames"``: float ``[n_frames]``).
    methods: method names, one box per method.
    path: output png.
    per_track: True for box plots of per-track medians, False for framewise distributions.
  """
  targets = _targets(rows)
  fig, axes = _grid(len(PLOT_METRICS), len(targets))
  for i, metric in enumerate(PLOT_METRICS):
    for j, target in enumerate(targets):
      _panel(axes[i, j], rows, methods, target, metric, per_track)
  fig.suptitle("per-track medians" if per_track else "all 1 s frames", fontsize=10)
  fig.tight_layout()
  _save(fig, path, dpi=80)


class MethodPoint(NamedTuple):
  """One method on the complexity figure.

  Attributes:
    method: its name.
    sdr: SDR in dB (the mean over targets of the median over tracks: SiSEC's average).
    n_parameters: its trained parameters (0: classical recipes, oracles).
    gflops_per_second: GFLOPs per second of audio (`mssjax.separators.complexity`); NaN: not measured.
    oracle: it saw the true stems.
  """

  method: str
  sdr: float
  n_parameters: int
  gflops_per_second: float
  oracle: bool = False


def _edge(values):
  """Where a log axis puts its zeros: a decade below the decade of the smallest positive value (1 if none)."""
  positive = [v for v in values if v > 0]
  return 10.0 ** (math.floor(math.log10(min(positive))) - 1) if positive else 1.0


def _complexity_panel(ax, points, values, *, xlabel, zero_label):
  """SDR against ``values`` (one per point; NaN: left off) on a log axis, the zeros at a shaded left edge
  whose tick reads ``zero_label``."""
  edge = _edge([v for v in values if np.isfinite(v)])
  shown = [(p, edge if v == 0 else v) for p, v in zip(points, values) if np.isfinite(v) and np.isfinite(p.sdr)]
  for point, x in shown:
    style = dict(marker="D", facecolors="none", edgecolors="C3") if point.oracle else \
        dict(marker="o", color="C0") if point.n_parameters else dict(marker="s", color="C2")
    ax.scatter([x], [point.sdr], s=36, zorder=3, **style)
  ax.set_xscale("log")
  top = max([x for _, x in shown], default=edge)
  ax.set_xlim(edge / 3, top * 10)
  decades = range(int(math.log10(edge)) + 1, math.floor(math.log10(top * 10)) + 1)
  ticks, labels = [10.0 ** k for k in decades], [f"$10^{{{k}}}$" for k in decades]
  if any(v == 0 for v in values):
    ax.axvspan(edge / 3, edge * 3 ** 0.5, color="0.92", zorder=0)
    ticks, labels = [edge] + ticks, [zero_label] + labels
  ax.set_xticks(ticks, labels)
  ax.minorticks_off()
  ax.margins(y=0.18)  # room above the top points for labels moved up (`_label_points`)
  ax.set_xlabel(xlabel, fontsize=8)
  ax.set_ylabel("SDR (dB), mean over targets", fontsize=8)
  ax.tick_params(labelsize=7)
  ax.grid(alpha=0.3)
  missing = [p.method for p, v in zip(points, values) if not np.isfinite(v)]
  if missing:
    ax.text(0.99, 0.02, "not measured: " + ", ".join(missing), transform=ax.transAxes, fontsize=6, ha="right",
            va="bottom", color="0.35")
  return [(x, p.sdr, p.method) for p, x in shown]


def _label_points(ax, labels, *, gap=11.0, width=70.0):
  """Writes each ``(x, y, text)`` beside its point, a label moved up (in display pixels) while it would
  overlap one placed before it: oracles of near-equal SDR and compute would print over each other."""
  placed = []
  for x, y, text in sorted(labels, key=lambda item: item[1]):
    px, py = ax.transData.transform((x, y))
    at = py + 4
    while any(abs(px - qx) < width and abs(at - qy) < gap for qx, qy in placed):
      at += gap
    placed.append((px, at))
    points = 72.0 / ax.figure.dpi  # per display pixel: the offsets scale with the dpi the figure is saved at
    ax.annotate(text, (x, y), textcoords="offset points", xytext=(6 * points, (at - py) * points), fontsize=7,
                arrowprops=dict(arrowstyle="-", color="0.6", lw=0.5) if at - py > gap else None)


def complexity_figure(points: Sequence[MethodPoint], path: str | os.PathLike) -> None:
  """SDR against parameters (left) and against GFLOPs per second of audio (right), one labelled point per method.

  Both x axes are logarithmic: methods without parameters (classical recipes, oracles, the mixture)
  sit at the marked left edge of the parameters panel, and a method of no FLOPs (the mixture) at
  that of the compute panel; the others sit at their measured compute. Oracles, which see the true
  stems, are open diamonds; networks dots; methods without parameters squares. A method whose
  compute was not measured (results stored before it was) is named under the compute panel.

  Args:
    points: one `MethodPoint` per method.
    path: output png.
  """
  fig, axes = _grid(1, 2, size=(5.0, 3.6))
  labels = [_complexity_panel(axes[0, 0], points, [float(p.n_parameters) for p in points], xlabel="parameters",
                              zero_label="no\nparameters"),
            _complexity_panel(axes[0, 1], points, [float(p.gflops_per_second) for p in points],
                              xlabel="GFLOPs per second of audio (XLA)", zero_label="no\nFLOPs")]
  handles = [plt.Line2D([], [], ls="", marker="o", color="C0", label="network"),
             plt.Line2D([], [], ls="", marker="s", color="C2", label="no parameters"),
             plt.Line2D([], [], ls="", marker="D", mfc="none", color="C3", label="oracle (sees the references)")]
  fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=7, frameon=False)
  fig.tight_layout(rect=(0, 0, 1, 0.93))
  fig.canvas.draw()  # the axes' final places and limits, so that display coordinates hold for the labels
  for ax, panel_labels in zip(axes[0], labels):
    _label_points(ax, panel_labels)
  _save(fig, path, dpi=90)


SPECTROGRAM_N_FFT, SPECTROGRAM_HOP = 2048, 512
LOWEST_HZ = 30.0
"""The spectrograms' frequency axis is logarithmic from here to Nyquist: music's octaves get equal room."""


def _log_spectrogram(x):
  """dB magnitude of the channel mean ``[2, n] -> [n_bins, n_frames]``."""
  spec = np.abs(np.asarray(spectral.stft(np.mean(x, axis=0), n_fft=SPECTROGRAM_N_FFT,
                                         hop_length=SPECTROGRAM_HOP)))
  return 20 * np.log10(np.maximum(spec, 1e-5))


def _log_frequency_axis(ax, sample_rate):
  ax.set_yscale("log")
  ax.set_ylim(LOWEST_HZ, sample_rate / 2)
  ticks = [t for t in (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000) if t < sample_rate / 2]
  ax.set_yticks(ticks, [f"{t // 1000}k" if t >= 1000 else str(t) for t in ticks])
  ax.minorticks_off()
  ax.set_ylabel("Hz", fontsize=7)


def spectrogram_figure(references: Mapping[str, np.ndarray], estimates: Mapping[str, np.ndarray],
                       path: str | os.PathLike, *, sample_rate: int = 44100, title: str = "") -> None:
  """Ground truth (left) against estimate (right) for each target, on a log-frequency axis.

  Args:
    references: ``{target: [2, n]}``.
    estimates: ``{target: [2, n]}``.
    path: output png.
    sample_rate: Hz, for the time and frequency axes.
    title: the figure's title.
  """
  targets = [t for t in references if t in estimates]
  fig, axes = _grid(len(targets), 2, size=(4.2, 2.0))
  freqs = np.asarray(spectral.fft_frequencies(sample_rate=sample_rate, n_fft=SPECTROGRAM_N_FFT))
  keep = freqs >= LOWEST_HZ / 2 ** 0.5
  for i, target in enumerate(targets):
    ref = _log_spectrogram(references[target])
    top = ref.max()
    for j, (name, x) in enumerate((("truth", ref), ("estimate", _log_spectrogram(estimates[target])))):
      ax = axes[i, j]
      times = np.arange(x.shape[1]) * SPECTROGRAM_HOP / sample_rate
      ax.pcolormesh(times, freqs[keep], x[keep], vmin=top - 80, vmax=top, cmap="magma", shading="nearest",
                    rasterized=True)
      _log_frequency_axis(ax, sample_rate)
      ax.set_title(f"{target}: {name}", fontsize=8)
      ax.tick_params(labelsize=6)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  _save(fig, path, dpi=70)
