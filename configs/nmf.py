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

import ml_collections


def get_config():
  """The default nmf config."""
  config = ml_collections.ConfigDict()
  config.method = "nmf"
  config.seed = 0
  config.sample_rate = 44100
  config.stft = ml_collections.ConfigDict(dict(n_fft=4096, hop_length=1024))
  config.hpss = ml_collections.ConfigDict(dict(kernel_size=(17, 17), power=2.0, margin=1.0))
  # beta-NMF (Fevotte & Idier 2011) with multiplicative updates
  config.nmf = ml_collections.ConfigDict(dict(
      harmonic_components=48, percussive_components=8, beta=2.0, n_iter=100))
  # frequency bands [low, high) in Hz where each target's components hold their energy
  config.bands = ml_collections.ConfigDict(dict(bass=(0.0, 200.0), vocals=(200.0, 4000.0),
                                                other=(4000.0, 22050.0)))
  config.band_weights = ml_collections.ConfigDict(dict(bass=1.0, vocals=1.0, other=1.0))
  # exponent of the Wiener-like masks from the reconstructions
  config.mask_power = 1.0
  config.wiener_iterations = 1
  return config
