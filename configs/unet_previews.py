"""The U-Net + BiLSTM trained on the MUSDB18 7-second previews within an hour of a 2-core CPU.

First convert the previews (``.stem.mp4``) once to a MUSDB18-HQ folder the grain
pipeline reads (the mixture is remade as the sum of the stems; about a minute)::

  python -m mssjax data prepare --root ../shared/data/musdb18-7 -o data_cache/musdb18-7-hq --set segment=0

then train (resumable: re-run the same command after an interruption)::

  python train.py --config configs/unet_previews.py --workdir workdirs/unet_previews

and separate / evaluate with the best checkpoint::

  python -m mssjax separate SONG.wav --set checkpoint=workdirs/unet_previews -o separated/

Sizes are cut for the CPU: a 2048-point STFT with bins up to 11 kHz, 3-second
chunks, batch 8, four encoder levels of 12 to 96 features and a 128-unit
BiLSTM (1.3 M parameters). 80 training tracks (the 14 MUSDB18
validation tracks are held out and scored every 500 steps by whole-signal SDR).
Measured on the 2-core CPU while five other jobs shared it (load 8 to 9): 0.8
steps/s, compile and input statistics about 2 minutes, so 2,400 steps take
about 55 minutes with the validations (an idle machine is faster).

What it reached: this config is the shipped network (mssjax/pretrained/unet.safetensors, made with
``python -m mssjax export-weights workdirs/unet_previews -o mssjax/pretrained/unet.safetensors``).
Its test-preview SDR table, the commands and the ablations (width, chunk length, loss domain,
augmentations, Wiener filter, test-time averaging) are in the model card beside the weights,
mssjax/pretrained/README.md, the one place those numbers are kept.

At the architecture study's budget (400 steps of batch 8 x 3 s, a sixth of this config's 2,400;
``benchmarks/architectures.py``) it reached, as ours, 3.06 dB average BSSEval v4 SDR on the 40 test
previews (best step 400; with the speed augmentation 2.94): the README's architecture table.
"""

from configs import unet


def get_config():
  """The previews config."""
  config = unet.get_config()
  config.num_train_steps = 2_400
  config.log_every = 25
  config.eval_every = 500
  config.checkpoint_every = 250
  config.stft.n_fft, config.stft.hop_length = 2048, 1024
  config.model.features = (12, 24, 48, 96)
  config.model.lstm_hidden = 128
  config.model.bandwidth_hz = 11_000
  config.model.stats_batches = 4
  config.optim.learning_rate = 2e-3
  config.optim.warmup_steps = 100
  config.data.root = "data_cache/musdb18-7-hq"
  config.data.chunk_seconds = 3.0
  config.data.batch_size = 8
  config.data.samples_per_track = 16
  config.data.worker_count = 1
  config.eval.max_tracks = 0
  # Whole-signal SDR picks the best checkpoint at a fraction of BSSEval v4's cost on a CPU
  # (v4 took minutes per validation here); score the final model with BSSEval v4 (evaluate.py).
  config.eval.metric = "global_sdr"
  config.separate.chunk_seconds = 8.0
  return config
