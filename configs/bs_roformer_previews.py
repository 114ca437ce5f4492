"""A small BS-RoFormer for the MUSDB18 7-second previews on a 2-core CPU (the architecture study's size).

Prepare the previews once (see ``configs/unet_previews.py``), then::

  python train.py --config configs/bs_roformer_previews.py --workdir workdirs/bs_roformer_previews

``configs/bs_roformer.py`` cut for the CPU with the data settings of
``configs/unet_previews.py``: a 2048-point STFT with a 1024-sample hop (as the
U-Net's), 16 bands (the reference's 62-band split with neighbouring bands
merged in fours: 6 x 8, 3 x 16, 2 x 48, 2 x 96 and 2 x 192 bins, then 257),
32 features, two blocks, two heads of 16, mask MLPs of hidden width 32 and no
multi-resolution STFT term (its 50-sample hop needs gigabytes at batch 16 x 6 s).
4 targets: 1,336,156 parameters (tests/test_model_bs_roformer.py; our count, by
the code whose counts equal lucidrains' BS-RoFormer 0.4.1 for the five
configurations in that test; this one was not counted with the reference).

Why this size (the architecture study's budget, 400 steps of 8 x 3 s): the
earlier 32 bands with rematerialised blocks (1,404,252 parameters) compiled its
initialiser in 10 minutes and its train step in 8 on the shared 2-core CPU and
took 13.7 s per step of 8 x 3 s (load 12); these 16 bands without remat compile
in 4 + 4 minutes and take 7.5 s per step against 4.3 s for
``configs/unet_previews.py`` at the same load (``python benchmarks/train.py
--config configs/bs_roformer_previews.py --steps 3``); XLA plans 951 MiB for
its train step. What it reached in the study (400 steps x batch 8 x 3 s), as
ours: BSSEval v4 SDR on the 40 test previews 3.48 / 1.21 / 0.96 / 1.49 dB
(vocals / drums / bass / other), average 1.79, best step 400 (README's table).
"""

from configs import bs_roformer, unet_previews


def get_config():
  """The previews config."""
  config = bs_roformer.get_config()
  previews = unet_previews.get_config()
  for section in ("data", "eval", "separate"):
    config[section] = previews[section]
  for name in ("num_train_steps", "log_every", "eval_every", "checkpoint_every"):
    config[name] = previews[name]
  config.stft.n_fft, config.stft.hop_length = 2048, 1024
  config.loss.weights.multi_resolution_stft = 0.0  # its 50-sample hop alone needs gigabytes at batch 16 x 6 s
  config.model.freqs_per_bands = (8,) * 6 + (16,) * 3 + (48,) * 2 + (96,) * 2 + (192,) * 2 + (257,)
  config.model.dim = 32
  config.model.depth = 2
  config.model.heads = 2
  config.model.dim_head = 16
  config.model.mlp_expansion_factor = 1
  config.model.remat = False  # at batch 8 x 3 s the activations fit (XLA plans 1.4 GB with remat); remat cost a forward
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 100
  return config
