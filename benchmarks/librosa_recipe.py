"""The reference four-stem recipe, written with librosa as a user would.

Vocals by the REPET-SIM example of librosa's gallery ("Vocal separation":
``nn_filter`` with cosine similarity and median aggregation over frames at
least 2 s apart, the filter capped by the mixture, soft masks with margins 2
(background) and 10 (vocals), power 2); HPSS of the background
(``librosa.decompose.hpss`` defaults); bass is its harmonic part below 200 Hz,
other the harmonic part above, drums the percussive part. Every stem keeps
the mixture phase. The residual the margins leave is in no stem, as in the
gallery.

This is the baseline of benchmarks/classical_quality.py (SDR) and
benchmarks/classical.py (speed); it is not part of the library.
"""

import librosa
import numpy as np

TARGETS = ("vocals", "drums", "bass", "other")


def vocal_masks(S_full, *, sr, hop_length, margin_i=2.0, margin_v=10.0, power=2.0):
  """The gallery's REPET-SIM masks ``(mask_background, mask_vocals)`` for ``S_full [..., F, T]``."""
  S_filter = librosa.decompose.nn_filter(S_full, aggregate=np.median, metric="cosine",
                                         width=int(librosa.time_to_frames(2, sr=sr, hop_length=hop_length)))
  S_filter = np.minimum(S_full, S_filter)
  mask_i = librosa.util.softmask(S_filter, margin_i * (S_full - S_filter), power=power)
  mask_v = librosa.util.softmask(S_full - S_filter, margin_v * S_filter, power=power)
  return mask_i, mask_v


def separate(y, *, sr=44100, n_fft=2048, hop_length=512, bass_cutoff_hz=200.0):
  """Four stems ``{target: [2, n]}`` of a stereo mixture ``y [2, n]`` (float32)."""
  D = librosa.stft(y, n_fft=n_fft, hop_length=hop_length)
  S_full, _ = librosa.magphase(D)
  mask_i, mask_v = vocal_masks(S_full, sr=sr, hop_length=hop_length)
  harmonic, percussive = librosa.decompose.hpss(D * mask_i)
  low = (librosa.fft_frequencies(sr=sr, n_fft=n_fft) < bass_cutoff_hz)[:, None]
  spectra = {"vocals": D * mask_v, "drums": percussive, "bass": harmonic * low, "other": harmonic * ~low}
  return {k: librosa.istft(v, hop_length=hop_length, n_fft=n_fft, length=y.shape[-1]).astype(np.float32)
          for k, v in spectra.items()}
