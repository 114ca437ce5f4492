"""The first classical recipe: HPSS, a 200 Hz bass split and REPET-SIM vocals.

Run:
  python -c "from mssjax import separators; sep = separators.get('hpss_repet')"
  python benchmarks/classical_quality.py --methods hpss_repet

No training. A 30 s stereo track takes about 10 s on a loaded 2-core CPU, 5x
faster than the librosa-built recipe (benchmarks/classical.py). On the 40
MUSDB18 7 s test previews (BSSEval v4, median over tracks of per-track
medians) it reached SDR vocals 3.05, drums 2.78, bass 1.39, other 0.83 dB,
average 2.01 dB; the librosa-built recipe (benchmarks/librosa_recipe.py)
reached 1.00 / 0.25 / 1.91 / 0.63, average 0.95.
"""

import ml_collections


def get_config():
  """The default hpss_repet config."""
  config = ml_collections.ConfigDict()
  config.method = "hpss_repet"
  config.sample_rate = 44100
  config.stft = ml_collections.ConfigDict(dict(n_fft=4096, hop_length=1024))
  # HPSS (Fitzgerald 2010): kernels (harmonic frames, percussive bins), soft masks
  config.hpss = ml_collections.ConfigDict(dict(kernel_size=(17, 17), power=2.0, margin=1.0))
  # bass: the harmonic part below this
  config.bass_cutoff_hz = 200.0
  # REPET-SIM (Rafii & Pardo 2012) on the harmonic and on the percussive part above the cut-off
  config.repet = ml_collections.ConfigDict(dict(
      n_neighbors=100, min_distance=1.0, threshold=0.0, selection="peaks", power=2.0, margin=(1.0, 1.0)))
  # share of the percussive part's non-repeating foreground that goes to vocals (0: none)
  config.vocal_residue = 1.0
  # multichannel Wiener post-filter iterations (0: plain masks)
  config.wiener_iterations = 1
  return config
