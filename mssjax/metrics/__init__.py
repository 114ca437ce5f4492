"""BSSEval v4 metrics in JAX, SiSEC aggregation and museval-format result stores."""

from mssjax.metrics.bss_eval import METRICS, bss_eval_v4, n_frames_bss, pad_or_truncate

__all__ = ["METRICS", "bss_eval_v4", "n_frames_bss", "pad_or_truncate"]
