"""Conv-TasNet on MUSDB18(-HQ): the full-size experiment, Demucs v2's Conv-TasNet for music.

Run:
  python train.py --config configs/conv_tasnet.py --workdir workdirs/conv_tasnet --set data.root=/path/to/musdb18hq

The model (Luo & Mesgarani 2019, `mssjax.models.conv_tasnet`) at the settings
Défossez et al. 2019 ("Music Source Separation in the Waveform Domain") used
for music, from Demucs v2's ``demucs/tasnet.py`` and its reproduction command
``run.py --tasnet --X=10 --samples=80000``: stereo in and out, N=256 filters of
L=20 samples, B=256, H=512, P=3, X=10 blocks, R=4 repeats, no skip path, no
biases, cLN before the bottleneck, ReLU masks. 10,977,872 parameters, equal to
Demucs v2's ConvTasNet at these settings (tests/test_model_conv_tasnet.py).

Training follows Demucs v2 too: L1 on the waveforms (``loss.kind="l1"``,
``loss.domain="time"``; the paper trains speech with permutation-invariant
SI-SNR, available here as ``loss.kind="si_sdr"``), Adam at 3e-4 with a
constant rate, 80,000-sample (1.8 s) chunks, a global batch of 64 (Demucs
spread it over 8 V100s of 32 GB; on one GPU lower ``data.batch_size`` or set
``model.remat=True``). The network ignores ``stft`` (it has its own learnt
transform); the STFT serves only a magnitude loss or a Wiener filter, if one is
configured. Its speed here has not been measured on a GPU. On a CPU use
``configs/conv_tasnet_previews.py``.

For scale, Demucs v2's paper and README report an overall SDR of 5.7 dB for
this Conv-TasNet on the MUSDB18 test set trained without extra data (their
figure, not ours; the brief of this work quotes their table's 5.73, which was
not re-read here), 6.3 dB with 150 extra songs.
"""

import ml_collections

from configs import unet

DEMUCS_CHUNK_SAMPLES = 80_000
"""Demucs v2's training chunk for Conv-TasNet (``--samples=80000``), in samples at 44.1 kHz."""


def get_config():
  """The Conv-TasNet experiment config."""
  config = unet.get_config()
  config.model = ml_collections.ConfigDict()
  config.model.name = "conv_tasnet"
  config.model.audio_channels = 2
  config.model.n_filters = 256            # N
  config.model.filter_length = 20         # L (even: the encoder's stride is L / 2)
  config.model.bottleneck_channels = 256  # B
  config.model.hidden_channels = 512      # H
  config.model.skip_channels = 0          # Sc: 0, no skip path (Demucs v2); the paper's code uses 128
  config.model.kernel_size = 3            # P
  config.model.n_blocks = 10              # X
  config.model.n_repeats = 4              # R
  config.model.input_norm = "cLN"         # before the bottleneck: Demucs v2's cLN, or the paper's code's gLN
  config.model.bias = False               # Demucs v2: no biases; the paper's code and asteroid: biases
  config.model.mask_prelu = False         # a PReLU before the mask convolution (the paper's code, asteroid)
  config.model.mask_activation = "relu"   # Demucs v2; the paper: "sigmoid"
  config.model.remat = False              # nnx.remat on each block: less memory, one more forward pass
  config.model.stats_batches = 0          # no input normalisation to initialise from data

  config.loss.kind, config.loss.domain = "l1", "time"
  config.optim.name = "adam"
  config.optim.learning_rate = 3e-4
  config.optim.schedule = "constant"
  config.optim.warmup_steps = 0
  config.optim.grad_clip_norm = 5.0  # kaituoxu/Conv-TasNet's max_norm; Demucs v2 clips nothing
  config.data.chunk_seconds = DEMUCS_CHUNK_SAMPLES / 44_100
  config.data.batch_size = 64
  config.separate.chunk_seconds = 8.0
  config.separate.overlap_seconds = 1.0
  return config
