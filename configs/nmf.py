"""The second classical recipe: HPSS, then frequency-informed beta-NMF of each part.

Run:
  python -c "from mssjax import separators; sep = separators.get('nmf')"
  python benchmarks/classical_quality.py --methods nmf

No training. Harmonic NMF components go to bass, vocals or other by the band
holding most of their (weighted) energy; percussive components to drums.
On the 40 MUSDB18 7 s test previews (BSSEval v4, median over tracks of
per-track medians) it reached SDR vocals 1.83, drums 2.10, bass 1.58, other
0.01 dB, average 1.38 dB (librosa-built recipe: vocals 1.00, average 0.95).
"other" stays nearly silent: few components hold most energy above 4 kHz.
"""

from mssjax import separators


def get_config():
  """The default nmf config: `mssjax.separators.nmf_config` (the values live in the library)."""
  return separators.nmf_config()
