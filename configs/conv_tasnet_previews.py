"""Conv-TasNet sized for the 2-core CPU, trained on the MUSDB18 7-second previews (the architectures study).

Prepare the previews once (as for configs/unet_previews.py)::

  python -m mssjax data prepare --root ../shared/data/musdb18-7 -o data_cache/musdb18-7-hq --set segment=0

then train (resumable) and separate with the best checkpoint::

  python train.py --config configs/conv_tasnet_previews.py --workdir workdirs/conv_tasnet_previews
  python -m mssjax separate SONG.wav --checkpoint workdirs/conv_tasnet_previews -o separated/

Demucs v2's layout (no biases, no skip path, cLN, ReLU masks; configs/conv_tasnet.py) cut for the
architecture study's budget on a 2-core CPU: N=128 filters of L=256 samples (5.8 ms, stride 2.9 ms,
against Demucs v2's 0.45 ms: a sixth of the frames of L=128's), B=64, H=128, P=3, X=7, R=2 (a
receptive field of 509 frames, 1.5 s). 414,236 parameters (tests/test_model_conv_tasnet.py; our
count, by the same code that equals Demucs v2's at its settings). Data and validation are those of
configs/unet_previews.py (3 s chunks, batch 8, whole-signal SDR), so the two compare step for step;
Adam at 1e-3 (Demucs v2's 3e-4 is for 180 epochs on 8 GPUs).

Why this size: the earlier N=256, L=128, B=128, H=256, X=8 (1,372,704 parameters, 157 GFLOP per
train step of 8 x 3 s by XLA's cost analysis) took 65 s per step of 16 x 6 s on the shared CPU;
L=256 with B=64, H=128 (621,088 parameters, 49 GFLOP) still took 23 s per step of 8 x 3 s.
This one (30 GFLOP; the U-Net's 23) took 5.0 s per step against 2.9 s for configs/unet_previews.py
training in the same minute (load 10 to 12; ``python benchmarks/train.py --config
configs/conv_tasnet_previews.py --steps 3``): within the study's bound of twice the U-Net's step.

What it reached in the architecture study (400 steps x batch 8 x 3 s; benchmarks/architectures.py,
README's table), as ours: BSSEval v4 SDR on the 40 test previews 2.23 / 1.94 / 2.81 / 0.98 dB
(vocals / drums / bass / other), average 1.99, best step 400.
"""

from configs import conv_tasnet


def get_config():
  """The previews config."""
  config = conv_tasnet.get_config()
  config.num_train_steps = 2_400
  config.log_every = 25
  config.eval_every = 500
  config.checkpoint_every = 250
  config.model.n_filters = 128
  config.model.filter_length = 256
  config.model.bottleneck_channels = 64
  config.model.hidden_channels = 128
  config.model.n_blocks = 7
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
