"""Band-Split RoFormer on MUSDB18(-HQ): the full-size experiment (Lu, Wang, Kong & Hung 2023).

Run:
  python train.py --config configs/bs_roformer.py --workdir workdirs/bs_roformer --set data.root=/path/to/musdb18hq

The model of `mssjax.models.bs_roformer` at the settings of the smaller model
the paper benchmarks on MUSDB18-HQ alone, as we read its section 4: L = 6
blocks of one time and one band transformer layer, D = 384 features per band,
8 heads of 64, feed-forward x4, the 62-band split of a 2048-point STFT
(lucidrains' ``DEFAULT_FREQS_PER_BANDS``) with a 10 ms hop (441 samples), mask
MLPs of depth 2 with hidden width 4 D. Loss as the reference implementation's:
L1 on the waveforms plus a multi-resolution STFT term (ours,
`mssjax.training.losses.multi_resolution_stft`). Adam, as MSST's configs, with
mssjax's warm-up and cosine decay (not the paper's schedule). One joint model
of 4 targets: 222,335,812 parameters (about 197 M in the mask MLPs), 64 of
them the rotary embeddings' fixed frequencies (no gradient, so Adam leaves
them); tests/test_model_bs_roformer.py checks counts against the reference.
Sized for a GPU; not trained here. On a CPU use ``configs/bs_roformer_previews.py``.

The paper's figure, not ours: 9.80 dB average SDR (museval, median over
tracks) on MUSDB18-HQ without extra training data for this smaller
BS-RoFormer; the full system, trained with 500 extra songs, ranked first in
the music separation track of the Sound Demixing Challenge 2023. The Mel-band
layout is ``configs/mel_roformer.py``.
"""

import ml_collections
from ml_collections import config_dict

from configs import unet
from mssjax.models import bs_roformer


def get_config():
  """The default BS-RoFormer config."""
  config = unet.get_config()
  config.stft.n_fft, config.stft.hop_length = 2048, 441

  config.model = ml_collections.ConfigDict()
  config.model.name = "bs_roformer"
  config.model.audio_channels = 2
  # the band layout (mssjax.models.bs_roformer.band_bins_of): "bs", contiguous bands of freqs_per_bands bins
  # (summing to 1 + n_fft // 2), or "mel", the supports of num_bands mel filters at sample_rate (overlapping;
  # their masks are averaged); the other layout's fields stay None
  config.model.bands = "bs"
  config.model.freqs_per_bands = bs_roformer.DEFAULT_FREQS_PER_BANDS
  config.model.num_bands = config_dict.placeholder(int)
  config.model.sample_rate = config_dict.placeholder(int)
  config.model.dim = 384
  config.model.depth = 6
  config.model.time_transformer_depth = 1
  config.model.freq_transformer_depth = 1
  config.model.heads = 8
  config.model.dim_head = 64
  config.model.ff_mult = 4
  config.model.mask_estimator_depth = 2
  config.model.mlp_expansion_factor = 4
  config.model.norm_each_transformer = False  # True: MelBandRoformer's norms (one per transformer, none final)
  config.model.remat = False  # nnx.remat each block: less memory, one more forward pass per step
  config.model.bandwidth_hz = None  # the bands cover every bin
  config.model.stats_batches = 0  # no input normalisation to initialise

  config.loss.kind, config.loss.domain = "l1", "time"
  config.loss.weights.multi_resolution_stft = 1.0
  # Adam (as MSST's BS-RoFormer configs), no weight decay: the rotary embeddings' frequencies get no gradient, so
  # they stay fixed as the reference's (requires_grad=False); with adamw, list them in optim.freeze
  config.optim.name = "adam"
  config.optim.learning_rate = 5e-4
  return config
