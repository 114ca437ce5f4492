"""BSSEval v4 metrics in JAX, SiSEC aggregation and museval-format result stores."""

from mssjax.metrics.bss_eval import METRICS, bss_eval_v4, n_frames_bss, pad_or_truncate
from mssjax.metrics.museval_compat import eval_mus_track, evaluate
from mssjax.metrics.store import aggregate, load_scores, save_track, track_json, write_tables

__all__ = [
    "METRICS", "aggregate", "bss_eval_v4", "eval_mus_track", "evaluate", "load_scores", "n_frames_bss",
    "pad_or_truncate",
    "save_track", "track_json", "write_tables",
]
