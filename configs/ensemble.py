"""An ensemble: the pretrained U-Net and the hpss_repet recipe, their waveforms averaged per target.

Run:
  python -m mssjax separate SONG.wav --config configs/ensemble.py -o separated/
  python -m mssjax separate SONG.wav --config configs/ensemble.py --set average=magnitude \
      --set weights.vocals=0.75,0.25 -o separated/
  python -m mssjax export --config configs/ensemble.py -o portable/ensemble.jaxexport
  python benchmarks/ensembles.py --root ../shared/data/musdb18-7   # members and ensembles on the test previews

Each member is a separator's whole config under ``member_configs`` (its
``method`` names it; a second network is another label with
``method = "unet"`` and its ``weights`` or ``checkpoint``); ``members`` lists
the labels in the order of the per-target ``weights`` (``()``: equal). Rules
(one rate, the members' common targets, the smallest member chunk) and the
two averages: `mssjax.separators.ensemble`. Both members work at 44.1 kHz on
MUSDB's four targets; the chunk is the network's 8 s. On the first 20 MUSDB18
7 s test previews (BSSEval v4 SDR, dB; ``benchmarks/ensembles.py --tracks 20``,
the README's "Ensembles" for the other variants):

  | method | vocals | drums | bass | other | avg |
  |---|---|---|---|---|---|
  | this ensemble | 4.57 | 4.51 | 2.31 | 2.13 | 3.38 |
  | unet alone | 4.50 | 4.34 | 2.38 | 2.13 | 3.34 |
  | weights (0.75, 0.25) on every target | 4.64 | 4.63 | 2.65 | 2.38 | 3.58 |
"""

from mssjax import separators


def get_config():
  """The unet + hpss_repet ensemble, equal weights, waveform averaging."""
  config = separators.default_config("ensemble").unlock()
  config.members = ("unet", "hpss_repet")
  config.member_configs.unet = separators.default_config("unet")          # the pretrained network
  config.member_configs.hpss_repet = separators.default_config("hpss_repet")
  config.average = "waveform"               # or "magnitude": a soft mask from the mean magnitudes
  for target in ("vocals", "drums", "bass", "other"):
    config.weights[target] = ()             # () equal; e.g. (0.75, 0.25) favours the network
  return config
