"""Evaluation of separators with BSSEval v4 (SiSEC 2018 protocol) and the HTML report.

Run (offline, on two generated 5 s songs written into the workdir; 1-2 minutes on an idle 2-core
CPU, mostly hpss_repet and nmf separating and their jit compilation):
  python evaluate.py --config configs/evaluate.py --workdir workdirs/evaluate

On MUSDB18 / MUSDB18-HQ:
  python evaluate.py --config configs/evaluate.py --workdir workdirs/musdb \
      --set methods=hpss_repet,nmf,irm2 --set data.root=/path/to/musdb18hq --set data.subset=test

Writes DIR/<method>/<subset>/<track>.json (museval format, readable by
museval.MethodStore().add_eval_dir(DIR/<method>)), DIR/results.csv and
DIR/results.md (median over frames, then over tracks, with parameter count and
separation time per second of audio) and DIR/report/index.html. Re-running
skips finished tracks. On generated songs expect SDR near 20 dB for irm2 and
a few dB for the classical methods; on MUSDB18 test, irm2 reaches about 8-9 dB
on vocals and hpss_repet about 0-2 dB.
"""

import ml_collections

from configs import ensemble, hpss_repet, nmf
from mssjax import separators

METHOD_CONFIGS = {"hpss_repet": hpss_repet.get_config, "nmf": nmf.get_config, "ensemble": ensemble.get_config}
"""The methods with a config file of their own; the others use `mssjax.separators.default_config`."""


def get_config():
  """The default evaluation config."""
  config = ml_collections.ConfigDict()
  config.methods = "unet,hpss_repet,nmf,irm2,mixture"   # comma-separated names of mssjax.separators
  # Every method's config, overridable as --set separators.<method>.<key>=VALUE, for example
  # --set separators.hpss_repet.hpss.kernel_size=31,17 or --set separators.unet.checkpoint=WORKDIR
  # (an ensemble's members: --set separators.ensemble.member_configs.unet.checkpoint=WORKDIR).
  config.separators = ml_collections.ConfigDict(
      {name: METHOD_CONFIGS.get(name, lambda n=name: separators.default_config(n))()
       for name in separators.names()})
  config.window_seconds = 1.0                       # BSSEval window and hop (SiSEC: 1 s)
  config.hop_seconds = 1.0
  config.save_estimates = False                     # DIR/<method>/estimates/<subset>/<track>/*.wav
  config.score_batch_size = 8                       # tracks of equal length scored in one call, split over devices
  config.progress = True

  config.data = ml_collections.ConfigDict()
  config.data.root = ""          # MUSDB18(-HQ) folder; empty: generated songs in DIR/songs
  config.data.subset = "test"
  config.data.split = ""         # subset "train" only: "valid" (MUSDB18's 14 validation tracks), "train", "" (all)
  config.data.max_tracks = 0     # 0: all tracks
  config.data.n_generated = 2    # generated songs when root is empty
  config.data.seconds = 5.0
  config.data.seed = 0

  config.report = ml_collections.ConfigDict()
  config.report.enabled = True
  config.report.n_audio_tracks = 2   # tracks with audio players and spectrograms
  return config
