"""The first classical recipe: HPSS, a 200 Hz bass split and REPET-SIM vocals.

Run:
  python -c "from mssjax import separators; sep = separators.get('hpss_repet')"
  python evaluate.py --config configs/evaluate.py --workdir workdirs/hpss_repet \
      --set methods=hpss_repet --set data.root=../shared/data/musdb18-7 --set data.subset=test
  python benchmarks/search_classical.py --method hpss_repet   # how the settings were chosen

No training. The settings (a 45-frame harmonic median filter, no Wiener
post-filter) were chosen on the 30 training previews of
benchmarks/search_classical.py (MUSDB18's validation tracks and 16 training
tracks), never on test; the search and why bass needed them:
`mssjax.separators`' module docstring. On the 40 MUSDB18 7 s test previews
(BSSEval v4, median over frames then tracks) it reaches:

  (40 of the 40 previews scored)

  | metric | vocals | drums | bass | other | avg |
  |---|---|---|---|---|---|
  | hpss_repet SDR | 3.21 | 2.96 | 1.92 | 0.87 | 2.24 |
  | hpss_repet SIR | 3.42 | 3.55 | 1.71 | 0.47 | 2.29 |
  | hpss_repet SAR | 5.90 | 5.70 | 7.24 | 3.34 | 5.54 |
  | librosa recipe SDR | 1.00 | 0.25 | 1.91 | 0.63 | 0.95 |

Speed: benchmarks/classical.py (the recipe against the librosa-built one).
"""

from mssjax import separators


def get_config():
  """The default hpss_repet config: `mssjax.separators.hpss_repet_config` (the values live in the library)."""
  return separators.hpss_repet_config()
