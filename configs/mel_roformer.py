"""Mel-Band RoFormer on MUSDB18(-HQ): BS-RoFormer with mel bands (Wang, Lu & Won 2023).

Run:
  python train.py --config configs/mel_roformer.py --workdir workdirs/mel_roformer --set data.root=/path/to/musdb18hq

``configs/bs_roformer.py`` with the band layout of Mel-RoFormer: 60
overlapping bands, the supports of librosa's mel filters of the 2048-point
STFT at 44.1 kHz (a bin's mask is the mean of its bands' masks), and the
reference MelBandRoformer's norms (an RMSNorm ends every transformer, no final
one) and mask MLPs (3 Linear layers). Its other sizes are BS-RoFormer's here
(D = 384, L = 6). One joint model of 4 targets: 832,598,764 parameters (the
overlapping bands' mask MLPs hold most), 64 of them the rotary embeddings'
fixed frequencies; tests/test_model_bs_roformer.py checks counts against the
reference. Sized for a GPU; not trained here.

The paper's finding, not ours: on MUSDB18-HQ, Mel-RoFormer separates vocals,
drums and other better than BS-RoFormer of the same size (bass is the
exception); its per-stem figures are in the paper's results table.
"""

from configs import bs_roformer


def get_config():
  """The Mel-RoFormer config."""
  config = bs_roformer.get_config()
  config.model.bands = "mel"
  config.model.freqs_per_bands = None
  config.model.num_bands = 60
  config.model.sample_rate = config.sample_rate  # the mel scale's rate: keep equal to sample_rate
  config.model.norm_each_transformer = True
  config.model.mask_estimator_depth = 3  # MelBandRoformer(mask_estimator_depth=2): its MLP has one more layer
  return config
