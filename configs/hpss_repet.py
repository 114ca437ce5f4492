"""The first classical recipe: HPSS, a 200 Hz bass split and REPET-SIM vocals.

Run:
  python -c "from mssjax import separators; sep = separators.get('hpss_repet')"
  python benchmarks/classical_quality.py --methods hpss_repet

No training. A 30 s stereo track takes a few seconds on one CPU core. On the
MUSDB18 7 s test previews it reaches a median SDR of about 1 dB on vocals
(see benchmarks/classical_quality.py), above the same recipe written with
librosa (benchmarks/librosa_recipe.py).
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
