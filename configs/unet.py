"""U-Net + BiLSTM on MUSDB18(-HQ): the full-size experiment.

Run:
  python train.py --config configs/unet.py --workdir workdirs/unet --set data.root=/path/to/musdb18hq

Trains on random 6 s chunks of MUSDB18's 86 training tracks with Open-Unmix /
Demucs augmentations, validates on its 14 validation tracks (BSSEval v4 SDR)
every 2,000 steps and keeps the best checkpoint. Sized for one GPU: 9.6 M
parameters (9,624,654; tests/test_models.py checks the count); its speed on a
GPU has not been measured here. On a CPU use ``configs/unet_previews.py``
(1.3 M parameters, the shipped network). For scale, Open-Unmix's paper reports
6.3 dB median vocals SDR on MUSDB18 (their figure, not ours).

Variants import this file and override a few fields.
"""

import ml_collections

import mssjax
from mssjax.data import pipeline


def get_config():
  """The default experiment config."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  # A weights file to start from instead of a random initialisation (fine-tuning): the shipped
  # mssjax/pretrained/unet.safetensors or an export-weights file of the same stft and sample_rate. Every
  # parameter whose path and shape fit is loaded (so a 4-target network seeds a 2- or 6-target one).
  config.init_weights = ""
  config.sample_rate = 44100
  # the stems the network separates, in output order: MUSDB18's four by default, or any stem names of the
  # dataset (see mssjax.data.pipeline); a weights file and an export carry them
  config.targets = mssjax.TARGETS
  config.num_train_steps = 300_000
  config.log_every = 100
  config.eval_every = 2_000
  config.checkpoint_every = 1_000
  config.progress = True
  # The network's compute dtype: "float32", or "bfloat16" (bfloat16 compute from float32 parameters, optimiser
  # state and checkpoints; the STFT, masks, iSTFT and loss stay float32: mssjax.models.precision). Validation
  # during training runs in it too; separate / export run float32.
  config.precision = "float32"

  config.stft = ml_collections.ConfigDict(dict(n_fft=4096, hop_length=1024))

  config.model = ml_collections.ConfigDict()
  config.model.name = "unet"
  config.model.audio_channels = 2
  config.model.features = (16, 32, 64, 128, 256)
  config.model.kernel_size = (5, 5)
  config.model.up_kernel_size = (3, 3)
  config.model.lstm_hidden = 256
  config.model.mask_activation = "softmax"
  config.model.bandwidth_hz = 16_000  # bins above reuse the top bin's mask (as Open-Unmix)
  config.model.stats_batches = 8  # batches for the input normalisation's initial statistics
  config.model.remat = False  # recompute each block's activations in the backward pass (nnx.remat): less memory

  # mssjax.training.loop.LOSS_KINDS; weights add WAVEFORM_TERMS (negative SDR/SI-SDR/ISR/SIR/SAR in dB,
  # the multi-resolution STFT distance) to the main term, e.g. --set loss.weights.sir=0.01.
  config.loss = ml_collections.ConfigDict(dict(kind="l1", domain="magnitude"))
  config.loss.weights = ml_collections.ConfigDict(
      dict(sdr=0.0, si_sdr=0.0, multi_resolution_stft=0.0, isr=0.0, sir=0.0, sar=0.0))
  config.loss.filters_len = 512  # BSSEval's distortion filters, for the isr/sir/sar terms

  config.optim = ml_collections.ConfigDict()
  config.optim.name = "adamw"
  config.optim.learning_rate = 1e-3
  config.optim.weight_decay = 1e-5
  config.optim.schedule = "cosine"
  config.optim.warmup_steps = 1_000
  config.optim.final_lr_fraction = 0.01
  config.optim.grad_clip_norm = 1.0
  # Gradient accumulation (optax.MultiSteps): each optimiser update averages the gradients of this many
  # micro-batches of data.batch_size, so the effective batch is accumulate_steps x data.batch_size.
  # num_train_steps, warmup_steps, the schedule, log_every, eval_every, checkpoint_every and the step of
  # TensorBoard scalars and checkpoints all count optimiser updates (each reads accumulate_steps batches).
  config.optim.accumulate_steps = 1
  # parameter path prefixes that are not trained, e.g. ("input_mean", "input_scale", "down") to fine-tune a
  # shipped network into new targets with its encoder fixed (optax.multi_transform)
  config.optim.freeze = ()

  # The grain pipeline's fields (mssjax.data.pipeline.default_config) plus the loader's name.
  config.data = pipeline.default_config()
  config.data.name = "musdb"  # mssjax.data.loaders.LOADERS: "musdb" (grain pipeline) or "synthetic"
  config.data.source = "files"  # a dataset folder (data.layout: auto, musdb18hq, trackfolder, sourcefolder); "tfds"
  config.data.root = ""  # set on the command line: --set data.root=PATH
  config.data.chunk_seconds = 6.0
  config.data.batch_size = 16  # one micro-batch, global: split over processes and devices
  config.data.samples_per_track = 64
  config.data.worker_count = 2
  config.data.augment.gain = True
  config.data.augment.channel_swap = True
  config.data.augment.remix = True

  config.eval = ml_collections.ConfigDict()
  config.eval.metric = "bss_eval_v4"
  config.eval.max_tracks = 0  # 0: every validation track
  config.eval.seconds = 6.0  # generated validation songs' length (data.name="synthetic")
  config.eval.crop_seconds = 0.0  # >0: score the first seconds of each track (one length, one compile)

  config.separate = ml_collections.ConfigDict()
  config.separate.chunk_seconds = 12.0
  config.separate.overlap_seconds = 1.0
  config.separate.wiener_iterations = 0

  config.checkpoint = ml_collections.ConfigDict(dict(keep=2))
  return config
