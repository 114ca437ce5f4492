"""mssjax: music source separation in JAX.

Classical separators (HPSS, REPET-SIM, NMF), a Flax U-Net + BiLSTM, and
BSSEval v4 metrics, all built on one jit-compiled spectral core.
"""

from mssjax import spectral
from mssjax.errors import AudioError, DataError, ParameterError

__version__ = "0.1.0"

TARGETS = ("vocals", "drums", "bass", "other")
"""The four MUSDB18 targets, in the order mssjax uses everywhere."""

from mssjax.decompose import hpss, nmf, repet_sim  # pylint: disable=wrong-import-position
