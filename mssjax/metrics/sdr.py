"""SDR summaries of a separated track, for model selection during training.

Two ways to score a track with one number per target, chosen by name
(``config.eval.metric`` of a training config, `VALIDATION_METRICS`):

- ``"global_sdr"``: the whole-signal SDR, ``10 log10(|s|^2 / |s - s_hat|^2)``
  (cheap: no distortion filters);
- ``"bss_eval_v4"``: the median over 1 s frames of BSSEval v4's SDR
  (`mssjax.metrics.bss_eval_v4`, SiSEC 2018), what evaluate.py reports.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from mssjax.metrics import bss_eval


def global_sdr(references: np.ndarray, estimates: np.ndarray) -> np.ndarray:
  """Whole-signal SDR in dB per source.

  Args:
    references, estimates: ``[n_sources, ...]`` (e.g. ``[4, 2, n]``), same shape.

  Returns:
    float64 ``[n_sources]``; a 1e-10 floor keeps silent sources finite.
  """
  axes = tuple(range(1, np.ndim(references)))
  signal = np.sum(np.square(references, dtype=np.float64), axis=axes)
  noise = np.sum(np.square(np.asarray(references, np.float64) - estimates), axis=axes)
  eps = 1e-10
  return 10 * np.log10((signal + eps) / (noise + eps))


def median_bss_eval_sdr(references: np.ndarray, estimates: np.ndarray, *, window: int = 44100,
                        hop: int = 44100) -> np.ndarray:
  """Median over frames of BSSEval v4 SDR per source.

  Args:
    references, estimates: ``[n_sources, channels, n_samples]`` (mssjax's layout).
    window, hop: BSSEval frames in samples (SiSEC: 1 s at 44.1 kHz).

  Returns:
    ``[n_sources]`` (NaN where every frame of a source is silent).
  """
  out = bss_eval.bss_eval_v4(np.swapaxes(references, 1, 2), np.swapaxes(estimates, 1, 2), window=window, hop=hop)
  sdr = np.asarray(out["SDR"])
  with np.errstate(all="ignore"):
    return np.array([np.nanmedian(row) if np.any(np.isfinite(row)) else np.nan for row in sdr])


VALIDATION_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "global_sdr": global_sdr,
    "bss_eval_v4": median_bss_eval_sdr,
}
"""``config.eval.metric`` -> ``metric(references [4, 2, n], estimates [4, 2, n]) -> [4]`` SDR in dB."""
