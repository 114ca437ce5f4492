"""Conv-TasNet sized for the 2-core CPU, trained on the MUSDB18 7-second previews (the architectures study).

Prepare the previews once (as for configs/unet_previews.py)::

  python -m mssjax data prepare --root ../shared/data/musdb18-7 -o data_cache/musdb18-7-hq --set segment=0

then train (resumable) and separate with the best checkpoint::

  python train.py --config configs/conv_tasnet_previews.py --workdir workdirs/conv_tasnet_previews
  python -m mssjax separate SONG.wav --checkpoint workdirs/conv_tasnet_previews -o separated/

Demucs v2's layout (no biases, no skip path, cLN, ReLU masks; configs/conv_tasnet.py) cut for a CPU:
N=256 filters of L=128 samples (2.9 ms, stride 1.45 ms, against Demucs v2's 0.45 ms: a sixth of the
frames, and close to the paper's 2 ms speech frames), B=128, H=256, P=3, X=8, R=2 (a receptive field of
1020 frames, 1.5 s). 1,372,704 parameters (tests/test_model_conv_tasnet.py). Data, budget and
validation are those of configs/unet_previews.py (3 s chunks, batch 8, 2,400 steps, whole-signal SDR
every 500 steps), so the two compare step for step; Adam at 1e-3 (Demucs v2's 3e-4 is for 180 epochs on
8 GPUs). What it reaches has not been measured yet.

Speed, measured once on the shared 2-core CPU (load 7, other jobs running): one train step of batch
16 x 6 s took 65 s after an 86 s compile, 1.5 s of audio per second against about 31 for the U-Net, so
2,400 steps of batch 8 x 3 s would take hours; the study may need fewer frames (a longer L) or a
narrower net for its budget.
"""

from configs import conv_tasnet


def get_config():
  """The previews config."""
  config = conv_tasnet.get_config()
  config.num_train_steps = 2_400
  config.log_every = 25
  config.eval_every = 500
  config.checkpoint_every = 250
  config.model.n_filters = 256
  config.model.filter_length = 128
  config.model.bottleneck_channels = 128
  config.model.hidden_channels = 256
  config.model.n_blocks = 8
  config.model.n_repeats = 2
  config.optim.learning_rate = 1e-3
  config.data.root = "data_cache/musdb18-7-hq"
  config.data.chunk_seconds = 3.0
  config.data.batch_size = 8
  config.data.samples_per_track = 16
  config.data.worker_count = 1
  config.eval.max_tracks = 0
  config.eval.metric = "global_sdr"  # as unet_previews: BSSEval v4 for the final scores (evaluate.py)
  config.separate.chunk_seconds = 8.0
  return config
