"""Open-Unmix (Stöter et al. 2019) on MUSDB18(-HQ): the paper's settings.

Run:
  python train.py --config configs/umx.py --workdir workdirs/umx --set data.root=/path/to/musdb18hq

The reference recipe (sigsep/open-unmix-pytorch v1.3.0, ``scripts/train.py`` defaults): one network
per target, hidden size 512, 3 bidirectional LSTM layers, a 4096-point STFT with hop 1024, bins up to
16 kHz (1,487 of 2,049), random 6 s chunks in batches of 16 (64 per track per epoch), Adam at 1e-3
with weight decay 1e-5, the MSE of the magnitudes, gain and channel-swap augmentations with random
track mixing, one EM iteration of the multichannel Wiener filter at separation. 8,893,348 parameters
per target (35,573,392 for the four; tests/test_model_umx.py checks both against the reference's).

What differs here: all targets train at once in one step (the networks stay independent:
``model.joint = False``); a constant learning rate for a fixed number of steps, keeping the best
checkpoint by validation SDR, instead of the reference's plateau decay (x0.3 after 80 epochs without
improvement) and early stopping (140 epochs); decoupled weight decay (AdamW) instead of Adam's L2;
the network's own deviations (normalisations without running statistics, ``log1p`` input, no dropout)
are listed in ``mssjax/models/umx.py``. Its speed on a GPU has not been measured here; on a CPU use
``configs/umx_previews.py``.

For scale, the Open-Unmix README reports for its MUSDB18-HQ model ``umxhq`` (median over frames,
median over the 50 MUSDB18 test tracks, BSSEval v4 SDR): vocals 6.25, drums 6.04, bass 5.07, other
4.28 dB (average 5.41); for ``umx`` (trained on MUSDB18) 6.32 / 5.73 / 5.23 / 4.02 dB. These are
their figures, not ours.

Variants import this file and override a few fields.
"""

import ml_collections

from configs import unet


def get_config():
  """The Open-Unmix config."""
  config = unet.get_config()
  config.num_train_steps = 344_000  # the reference's 1,000 epochs of 86 x 64 / 16 = 344 steps
  config.eval_every = 2_000

  config.stft.n_fft, config.stft.hop_length = 4096, 1024

  config.model = ml_collections.ConfigDict()
  config.model.name = "umx"
  config.model.audio_channels = 2
  config.model.hidden_size = 512
  config.model.n_layers = 3
  config.model.unidirectional = False
  config.model.joint = False  # one network per target (the paper); True: one network for all targets
  config.model.bandwidth_hz = 16_000  # the reference's max_bin: 1,487 bins at 44.1 kHz / 4096
  config.model.stats_batches = 8  # batches for the input normalisation's initial statistics
  config.model.remat = False  # recompute each LSTM layer in the backward pass (nnx.remat)

  config.loss.kind, config.loss.domain = "mse", "magnitude"

  config.optim.name = "adamw"
  config.optim.learning_rate = 1e-3
  config.optim.weight_decay = 1e-5
  config.optim.schedule = "constant"
  config.optim.warmup_steps = 0
  config.optim.grad_clip_norm = 0.0

  config.data.chunk_seconds = 6.0
  config.data.batch_size = 16
  config.data.samples_per_track = 64

  config.separate.chunk_seconds = 30.0  # the BLSTM's context; the reference separates whole tracks
  config.separate.overlap_seconds = 1.0
  config.separate.wiener_iterations = 1
  return config
