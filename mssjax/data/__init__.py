"""Datasets: any stems in four layouts (`layouts`: musdb18, musdb18hq, trackfolder,
sourcefolder), MUSDB18 readers (`musdb`), the study's preprocessing and validation.

``python -m mssjax data prepare|validate|generate|build ...`` runs the tools from the
shell (`mssjax.cli`).
"""

from mssjax.data.musdb import (LAYOUTS, SAMPLE_RATE, SPLITS, STEM_NAMES, SUBSETS, VALIDATION_TRACKS, Track,
                               detect_layout, load_tracks)

__all__ = [
    "LAYOUTS", "SAMPLE_RATE", "SPLITS", "STEM_NAMES", "SUBSETS", "VALIDATION_TRACKS", "Track",
    "detect_layout", "load_tracks",
]
